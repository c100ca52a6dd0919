//! Segment tracking messages as clients send them, and their checks. Unlike the REST API, unknown fields are
//! tolerated here: the official clients add their own (`_metadata`, `integrations`, `channel`, …).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::wire::parse_time;

/// The spec's limit for one message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// The spec's limit for one request.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
const MAX_ID_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageType {
    pub fn parse(text: &str) -> Option<MessageType> {
        match text {
            "identify" => Some(MessageType::Identify),
            "track" => Some(MessageType::Track),
            "page" => Some(MessageType::Page),
            "screen" => Some(MessageType::Screen),
            "group" => Some(MessageType::Group),
            "alias" => Some(MessageType::Alias),
            _ => None,
        }
    }
}

/// The fields Rapport reads from a message; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawMessage {
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub user_id: Option<Value>,
    pub anonymous_id: Option<Value>,
    pub message_id: Option<String>,
    pub event: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub properties: Option<Map<String, Value>>,
    pub traits: Option<Map<String, Value>>,
    pub context: Option<Map<String, Value>>,
    pub group_id: Option<Value>,
    pub previous_id: Option<Value>,
    pub timestamp: Option<String>,
    pub original_timestamp: Option<String>,
    pub sent_at: Option<String>,
    pub write_key: Option<String>,
}

/// A message that passed its checks.
#[derive(Debug, Clone)]
pub struct CheckedMessage {
    pub message_type: MessageType,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub message_id: Option<String>,
    /// The event name of a track call, or the page or screen name.
    pub name: Option<String>,
    pub category: Option<String>,
    pub properties: Map<String, Value>,
    pub traits: Map<String, Value>,
    pub context: Map<String, Value>,
    pub group_id: Option<String>,
    pub previous_id: Option<String>,
    pub timestamp: DateTime<Utc>,
}

/// Ids may arrive as strings or numbers; both are kept as text.
fn id_text(field: &str, value: Option<Value>) -> Result<Option<String>, String> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text,
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => return Err(format!("{field} must be a string or a number")),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > MAX_ID_CHARS {
        return Err(format!("{field} must be at most {MAX_ID_CHARS} characters"));
    }
    Ok(Some(trimmed.to_owned()))
}

/// The event time. A device clock may be wrong, so when the client says when the event happened by its own clock
/// (`originalTimestamp`) and when it sent it (`sentAt`), the time is corrected:
/// `timestamp = receivedAt − (sentAt − originalTimestamp)`. An explicit `timestamp` (server libraries, historical
/// imports) is taken as given; without either, the time it arrived.
pub fn corrected_timestamp(
    timestamp: Option<&str>,
    original_timestamp: Option<&str>,
    sent_at: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let parse = |field: &str, text: &str| parse_time(text).map_err(|message| format!("{field} {message}"));
    if let Some(text) = timestamp {
        return parse("timestamp", text);
    }
    let Some(original) = original_timestamp.map(|text| parse("originalTimestamp", text)).transpose()? else {
        return Ok(received_at);
    };
    Ok(match sent_at.map(|text| parse("sentAt", text)).transpose()? {
        Some(sent) => {
            let skew: Duration = sent - original;
            received_at - skew
        }
        None => original,
    })
}

impl RawMessage {
    /// Checks the message. `kind` is the endpoint's type for single calls, `None` inside a batch (where each message
    /// names its own). `batch_sent_at` is the batch's `sentAt`, which the clients set once per request.
    pub fn check(
        self,
        kind: Option<MessageType>,
        batch_sent_at: Option<&str>,
        received_at: DateTime<Utc>,
    ) -> Result<CheckedMessage, String> {
        let message_type = match (kind, self.message_type.as_deref()) {
            (Some(kind), _) => kind,
            (None, Some(text)) => MessageType::parse(text)
                .ok_or_else(|| format!("type {text:?} is not one of identify, track, page, screen, group, alias"))?,
            (None, None) => return Err("type is missing".into()),
        };
        let user_id = id_text("userId", self.user_id)?;
        let anonymous_id = id_text("anonymousId", self.anonymous_id)?;
        let group_id = id_text("groupId", self.group_id)?;
        let previous_id = id_text("previousId", self.previous_id)?;
        match message_type {
            MessageType::Alias => {
                if user_id.is_none() || previous_id.is_none() {
                    return Err("alias needs both userId and previousId".into());
                }
            }
            _ if user_id.is_none() && anonymous_id.is_none() => {
                return Err("userId or anonymousId is required".into());
            }
            MessageType::Group if group_id.is_none() => return Err("group needs a groupId".into()),
            _ => {}
        }
        let name = match self.event.or(self.name) {
            Some(name) if name.trim().is_empty() => None,
            other => other.map(|name| name.trim().to_owned()),
        };
        if message_type == MessageType::Track && name.is_none() {
            return Err("track needs an event name".into());
        }
        if name.as_ref().is_some_and(|name| name.chars().count() > 200) {
            return Err("the event name must be at most 200 characters".into());
        }
        let message_id = self.message_id.map(|id| id.trim().to_owned()).filter(|id| !id.is_empty());
        if message_id.as_ref().is_some_and(|id| id.chars().count() > MAX_ID_CHARS) {
            return Err(format!("messageId must be at most {MAX_ID_CHARS} characters"));
        }
        let sent_at = self.sent_at.as_deref().or(batch_sent_at);
        let timestamp =
            corrected_timestamp(self.timestamp.as_deref(), self.original_timestamp.as_deref(), sent_at, received_at)?;
        let mut traits = self.traits.unwrap_or_default();
        let context = self.context.unwrap_or_default();
        // analytics.js puts identify traits in `context.traits` on other calls; they count for identify too.
        if message_type == MessageType::Identify {
            if let Some(Value::Object(context_traits)) = context.get("traits") {
                for (key, value) in context_traits {
                    traits.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        Ok(CheckedMessage {
            message_type,
            user_id,
            anonymous_id,
            message_id,
            name,
            category: self.category,
            properties: self.properties.unwrap_or_default(),
            traits,
            context,
            group_id,
            previous_id,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap_or_default()
    }

    #[test]
    fn clock_skew_is_corrected() {
        let received = at("2026-03-01T10:00:10Z");
        // The device clock is 1 hour fast: it says it sent at 11:00:05 what happened at 11:00:00.
        let corrected = corrected_timestamp(None, Some("2026-03-01T11:00:00Z"), Some("2026-03-01T11:00:05Z"), received);
        assert_eq!(corrected, Ok(at("2026-03-01T10:00:05Z")));
        let plain = corrected_timestamp(Some("2026-02-01T00:00:00+08:00"), None, None, received);
        assert_eq!(plain, Ok(at("2026-01-31T16:00:00Z")));
        assert_eq!(corrected_timestamp(None, None, Some("2026-03-01T11:00:05Z"), received), Ok(received));
        // An explicit timestamp is trusted even when sentAt is present (a server library, or a historical import).
        let explicit = corrected_timestamp(Some("2020-01-01T00:00:00Z"), None, Some("2026-03-01T11:00:05Z"), received);
        assert_eq!(explicit, Ok(at("2020-01-01T00:00:00Z")));
        assert!(corrected_timestamp(Some("soon"), None, None, received).is_err());
    }

    #[test]
    fn messages_are_checked() {
        let received = at("2026-03-01T10:00:00Z");
        let check = |value: Value, kind: Option<MessageType>| {
            serde_json::from_value::<RawMessage>(value)
                .map_err(|error| error.to_string())
                .and_then(|raw| raw.check(kind, None, received))
                .map(|message| format!("{:?} {:?}", message.message_type, message.name))
        };
        let cases = [
            (
                serde_json::json!({"userId": 42, "event": "Signed Up"}),
                Some(MessageType::Track),
                Ok("Track Some(\"Signed Up\")".to_owned()),
            ),
            (
                serde_json::json!({"anonymousId": "a1"}),
                Some(MessageType::Track),
                Err("track needs an event name".to_owned()),
            ),
            (
                serde_json::json!({"event": "x"}),
                Some(MessageType::Track),
                Err("userId or anonymousId is required".to_owned()),
            ),
            (
                serde_json::json!({"type": "alias", "userId": "u"}),
                None,
                Err("alias needs both userId and previousId".to_owned()),
            ),
            (serde_json::json!({"type": "group", "userId": "u"}), None, Err("group needs a groupId".to_owned())),
            (
                serde_json::json!({"type": "jump", "userId": "u"}),
                None,
                Err("type \"jump\" is not one of identify, track, page, screen, group, alias".to_owned()),
            ),
            (
                serde_json::json!({"type": "page", "anonymousId": "a", "name": "Pricing", "_metadata": {}}),
                None,
                Ok("Page Some(\"Pricing\")".to_owned()),
            ),
            (
                serde_json::json!({"userId": {"id": 1}, "event": "x"}),
                Some(MessageType::Track),
                Err("userId must be a string or a number".to_owned()),
            ),
        ];
        for (value, kind, expected) in cases {
            assert_eq!(check(value.clone(), kind), expected, "{value}");
        }
    }
}
