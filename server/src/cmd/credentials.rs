//! `vigil token create` and `vigil device add`: new credentials for the configuration
//! file. The secret is printed once, on stdout; only its hash goes into the file.

use anyhow::{bail, Context};

use crate::auth::{device, secret, token, Role};
use crate::cli::{DeviceCommand, TokenCommand};

pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create {
        name,
        role,
        patient_prefixes,
    } = command;
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    Role::parse(&role, patient_prefixes.clone()).map_err(anyhow::Error::msg)?;
    let secret = token::generate().context("the operating system's random source failed")?;
    println!("# token for '{name}' (shown once; give it to the client, keep it secret):");
    println!("# {secret}");
    println!("[[tokens]]");
    println!("name = {}", toml_string(&name));
    println!("role = {}", toml_string(&role));
    println!("sha256 = \"{}\"", token::digest(&secret).to_hex());
    if !patient_prefixes.is_empty() {
        let list: Vec<String> = patient_prefixes.iter().map(|p| toml_string(p)).collect();
        println!("patient_prefixes = [{}]", list.join(", "));
    }
    Ok(())
}

pub fn device(command: DeviceCommand) -> anyhow::Result<()> {
    let DeviceCommand::Add {
        id,
        patient,
        secret,
    } = command;
    device::check_id(&id)?;
    device::check_patient(&patient)?;
    // A generated secret is beyond guessing and gets a fast keyed digest; one a person
    // chose gets Argon2 (slow to check, on a bounded pool).
    let (secret, hash) = match secret {
        Some(s) if s.chars().count() < 16 => bail!("--secret must be at least 16 characters"),
        Some(s) => {
            let hash = secret::hash_chosen(&s)?;
            (s, hash)
        }
        None => {
            let s = secret::generate()?;
            let hash = secret::hash_generated(&s)?;
            (s, hash)
        }
    };
    println!("# device '{id}': MQTT username {id}, password below (shown once):");
    println!("# {secret}");
    println!("[[devices]]");
    println!("id = {}", toml_string(&id));
    println!("patient = {}", toml_string(&patient));
    println!("secret_hash = {}", toml_string(&hash));
    Ok(())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
