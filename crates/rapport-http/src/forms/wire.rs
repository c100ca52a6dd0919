//! The wire shape of a form's definition: what the API takes and returns, and what the store keeps as a JSON
//! document. `definition.rs` checks it into a `FormDefinition`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A text in Simplified Chinese and English, `{"zh-CN": "…", "en": "…"}`; at least one is required, and a missing
/// one falls back to the other. A plain string is taken as `{"zh-CN": "…"}`, and so shown in both languages.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LocalizedWire {
    #[serde(rename = "zh-CN", default, skip_serializing_if = "Option::is_none")]
    pub zh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

impl<'de> Deserialize<'de> for LocalizedWire {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Both {
            #[serde(rename = "zh-CN", default)]
            zh: Option<String>,
            #[serde(default)]
            en: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a text, or an object with zh-CN and en texts")]
        enum Raw {
            Plain(String),
            Both(Both),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Plain(text) => LocalizedWire { zh: Some(text), en: None },
            Raw::Both(Both { zh, en }) => LocalizedWire { zh, en },
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormDefinitionWire {
    /// Heading of the hosted page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<LocalizedWire>,
    /// A paragraph under the heading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<LocalizedWire>,
    /// `zh-CN` (default) or `en`: the language shown when neither `?lang=` nor the browser chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_language: Option<String>,
    /// Up to 50 fields, shown in order. At least one must map to `email` or `phone`.
    pub fields: Vec<FormFieldWire>,
    /// The submit button's label (default 提交 / Submit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_label: Option<LocalizedWire>,
    /// What the visitor sees after submitting: a thank-you `message`, or a `redirect` to an http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_submit: Option<AfterSubmitWire>,
    /// Origins (`https://www.example.com`) whose pages may embed the form; empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Submissions sent sooner than this many seconds after the form was shown are treated as spam (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_fill_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormFieldWire {
    /// The answer's name: a slug, unique in the form.
    pub key: String,
    /// `text`, `email`, `phone`, `number`, `select`, `radio`, `checkbox`, `date`, `textarea`, `hidden` or `consent`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Required except for hidden and consent fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LocalizedWire>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<LocalizedWire>,
    /// The choices of a select, radio or checkbox field (a checkbox without options is a single yes/no box).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<FormOptionWire>,
    /// The contact field the answer is written to: `email`, `phone`, `name` (split into first and last name),
    /// `first_name`, `last_name`, `title`, `company`, `city`, `province`, `country`, or `fields.KEY` for a custom
    /// field. Answers are recorded on the `form_submitted` event either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps_to: Option<String>,
    /// The value of a hidden field (a campaign, a landing page name); the page's query string may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Consent fields: the channel consented to, `email`, `sms`, `phone` or `wechat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Consent fields: the text shown beside the box, recorded word for word as proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<LocalizedWire>,
    /// Longest accepted answer in characters (text 1,000 and textarea 10,000 at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormOptionWire {
    /// What is stored.
    pub value: String,
    /// What is shown; the value when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LocalizedWire>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterSubmitWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<LocalizedWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
}
