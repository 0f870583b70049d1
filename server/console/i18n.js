// Console strings in English and Simplified Chinese. Clinical messages written in rules are
// shown as written; metric names and units are translated here.
"use strict";
window.VIGIL_STRINGS = {
  "en": {
    "nav.board": "Board", "nav.patients": "Patients", "nav.silences": "Silences", "nav.dispositions": "Outcomes",
    "act.resolve_as": "Resolve as…",
    "disp.title": "What alerts led to, per rule", "disp.rule": "Rule", "disp.total": "Recorded",
    "disp.idle": "No action or measurement error", "disp.days": "Last", "disp.empty": "Nothing recorded in these days.",
    "nav.signout": "Sign out", "lang.switch": "中文",
    "conn.live": "live", "conn.lost": "disconnected, reconnecting…",
    "sev.high": "High", "sev.medium": "Medium", "sev.low": "Low",
    "state.active": "active", "state.acknowledged": "acknowledged", "state.escalated": "escalated",
    "state.resolved": "resolved",
    "filter.team": "Care team", "filter.severity": "Severity", "filter.state": "State",
    "filter.all": "All", "filter.open": "Open", "filter.condition": "Condition", "filter.tier": "Tier",
    "act.acknowledge": "Acknowledge", "act.resolve": "Resolve", "act.snooze": "Snooze",
    "act.review": "Mark reviewed", "act.delete": "Delete", "act.create": "Silence",
    "board.empty": "No open alerts.", "board.observed": "Observed", "board.raised": "Raised",
    "board.level": "level", "board.mute": "Mute sound 5 min", "board.unmute": "Sound muted",
    "board.snoozed": "snoozed until", "board.by": "by", "board.value": "Value", "board.message": "Message",
    "wl.patient": "Patient", "wl.team": "Care team", "wl.conditions": "Conditions",
    "wl.tier": "Tier", "wl.open": "Open alerts", "wl.news2": "NEWS2",
    "wl.last": "Last reading", "wl.reviewed": "Reviewed until", "wl.needs": "needs review",
    "wl.never": "never", "wl.note": "note", "wl.empty": "No patients.",
    "pt.conditions": "Conditions", "pt.tier": "Tier", "pt.consent": "Consent",
    "pt.overrides": "Per-patient overrides", "pt.open": "Open alerts",
    "pt.history": "Alert history", "pt.readings": "Readings", "pt.none": "none",
    "pt.yes": "yes", "pt.no": "no", "pt.nodata": "No readings held for this patient.",
    "ev.raised": "raised", "ev.acknowledged": "acknowledged", "ev.escalated": "escalated",
    "ev.resolved": "resolved", "ev.renotified": "re-notified", "ev.snoozed": "snoozed",
    "sil.patient": "Patient", "sil.rule": "Rule", "sil.team": "Care team", "sil.ends": "Ends",
    "sil.comment": "Comment", "sil.by": "By", "sil.duration": "Duration", "sil.empty": "No silences in force.",
    "signin.title": "Sign in to Vigil", "signin.token": "Access token", "signin.go": "Sign in",
    "err.generic": "The server refused: ", "time.ago": "ago", "min": "min", "h": "h", "d": "d"
  },
  "zh-CN": {
    "nav.board": "告警看板", "nav.patients": "患者列表", "nav.silences": "静默规则", "nav.dispositions": "处置统计",
    "act.resolve_as": "解除并记录处置…",
    "disp.title": "各规则告警的处置结果", "disp.rule": "规则", "disp.total": "已记录",
    "disp.idle": "无需处理或测量错误占比", "disp.days": "最近", "disp.empty": "这段时间没有记录。",
    "dispo.contacted_patient": "已联系患者", "dispo.advised_self_care": "已指导自我护理",
    "dispo.medication_changed": "已调整用药", "dispo.referred_urgent_care": "已转诊急诊门诊",
    "dispo.sent_to_emergency": "已送急诊", "dispo.device_or_measurement_error": "设备或测量错误",
    "dispo.no_action_needed": "无需处理",
    "nav.signout": "退出登录", "lang.switch": "English",
    "conn.live": "实时", "conn.lost": "连接中断，正在重连…",
    "sev.high": "高", "sev.medium": "中", "sev.low": "低",
    "state.active": "未处理", "state.acknowledged": "已确认", "state.escalated": "已升级",
    "state.resolved": "已解除",
    "filter.team": "护理团队", "filter.severity": "级别", "filter.state": "状态",
    "filter.all": "全部", "filter.open": "未关闭", "filter.condition": "病种", "filter.tier": "风险分层",
    "act.acknowledge": "确认", "act.resolve": "解除", "act.snooze": "暂缓",
    "act.review": "标记已复核", "act.delete": "删除", "act.create": "静默",
    "board.empty": "当前没有未关闭的告警。", "board.observed": "测量时间", "board.raised": "告警时间",
    "board.level": "级", "board.mute": "静音 5 分钟", "board.unmute": "已静音",
    "board.snoozed": "暂缓至", "board.by": "操作人", "board.value": "数值", "board.message": "告警内容",
    "wl.patient": "患者", "wl.team": "护理团队", "wl.conditions": "病种",
    "wl.tier": "分层", "wl.open": "未关闭告警", "wl.news2": "NEWS2",
    "wl.last": "最近测量", "wl.reviewed": "复核有效至", "wl.needs": "待复核",
    "wl.never": "从未", "wl.note": "备注", "wl.empty": "没有患者。",
    "pt.conditions": "病种", "pt.tier": "风险分层", "pt.consent": "知情同意",
    "pt.overrides": "个体化阈值", "pt.open": "未关闭告警",
    "pt.history": "告警记录", "pt.readings": "测量数据", "pt.none": "无",
    "pt.yes": "是", "pt.no": "否", "pt.nodata": "暂无该患者的测量数据。",
    "ev.raised": "触发", "ev.acknowledged": "确认", "ev.escalated": "升级",
    "ev.resolved": "解除", "ev.renotified": "再次提醒", "ev.snoozed": "暂缓",
    "sil.patient": "患者", "sil.rule": "规则", "sil.team": "护理团队", "sil.ends": "结束时间",
    "sil.comment": "说明", "sil.by": "操作人", "sil.duration": "时长", "sil.empty": "当前没有生效的静默规则。",
    "signin.title": "登录 Vigil", "signin.token": "访问令牌", "signin.go": "登录",
    "err.generic": "服务器拒绝：", "time.ago": "前", "min": "分钟", "h": "小时", "d": "天"
  }
};
window.VIGIL_METRICS = {
  "en": {
    "heart_rate": ["Heart rate", "/min"], "spo2": ["SpO₂", "%"], "resp_rate": ["Respiratory rate", "/min"],
    "systolic_bp": ["Systolic BP", "mmHg"], "diastolic_bp": ["Diastolic BP", "mmHg"],
    "temperature": ["Temperature", "°C"], "weight": ["Weight", "kg"], "glucose": ["Glucose", "mmol/L"],
    "consciousness": ["Consciousness (ACVPU)", ""], "on_oxygen": ["Supplemental oxygen", ""],
    "news2": ["NEWS2", ""]
  },
  "zh-CN": {
    "heart_rate": ["心率", "次/分"], "spo2": ["血氧饱和度", "%"], "resp_rate": ["呼吸频率", "次/分"],
    "systolic_bp": ["收缩压", "mmHg"], "diastolic_bp": ["舒张压", "mmHg"],
    "temperature": ["体温", "°C"], "weight": ["体重", "kg"], "glucose": ["血糖", "mmol/L"],
    "consciousness": ["意识（ACVPU）", ""], "on_oxygen": ["吸氧", ""],
    "news2": ["NEWS2 评分", ""]
  }
};
