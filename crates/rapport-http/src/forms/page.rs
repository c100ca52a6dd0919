//! The hosted page and the embeddable markup of a form, rendered on the server. Every text that comes from a
//! definition or a visitor goes through [`escape`]. The form works without JavaScript: it posts
//! `application/x-www-form-urlencoded` and the server answers with the page again (errors shown per field, the
//! visitor's answers kept) or with the thank-you.

use std::collections::HashMap;
use std::fmt::Write;

use super::answers::{AnswerError, RawAnswers};
use super::definition::{FieldKind, FormDefinition, FormField, Lang, Localized};

/// The names of the form's own inputs; field keys cannot start with `_`, so they never clash.
pub const TOKEN_INPUT: &str = "_token";
pub const HONEYPOT_INPUT: &str = "_hp";
pub const LANG_INPUT: &str = "_lang";
pub const REFERRER_INPUT: &str = "_referrer";

/// What a rendering needs beyond the definition.
pub struct Rendering<'a> {
    pub form_id: &'a str,
    pub form: &'a FormDefinition,
    pub lang: Lang,
    /// Where the form posts to.
    pub action: &'a str,
    pub token: &'a str,
    /// Answers to show again after a failed submission, and hidden values from the page's query string.
    pub values: &'a RawAnswers,
    pub errors: &'a [AnswerError],
    /// Where the visitor came from, carried into the submission.
    pub referrer: &'a str,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// The `<form>` element with its fields, shared by the hosted page and the embed.
pub fn form_markup(rendering: &Rendering<'_>) -> String {
    let Rendering { form_id, form, lang, action, token, values, errors, referrer } = rendering;
    let lang = *lang;
    let errors_by_key: HashMap<&str, &Localized> =
        errors.iter().map(|error| (error.key.as_str(), &error.message)).collect();
    let mut html = String::with_capacity(4_096);
    let _ = write!(
        html,
        r#"<form class="rapport-form" method="post" action="{}" accept-charset="UTF-8" novalidate data-rapport-form="{}" lang="{}">"#,
        escape(action),
        escape(form_id),
        lang.tag()
    );
    if !errors.is_empty() {
        let summary = match lang {
            Lang::Zh => "提交未成功，请检查标出的内容。",
            Lang::En => "The form was not sent. Please check the marked fields.",
        };
        let _ = write!(html, r#"<div class="rapport-form-alert" role="alert">{}"#, escape(summary));
        if let Some(general) = errors.iter().find(|error| error.key.is_empty()) {
            let _ = write!(html, " {}", escape(general.message.get(lang)));
        }
        html.push_str("</div>");
    } else {
        html.push_str(r#"<div class="rapport-form-alert" role="alert" hidden></div>"#);
    }
    for field in &form.fields {
        let error = errors_by_key.get(field.key.as_str()).map(|message| message.get(lang));
        let given = values.get(&field.key).cloned().unwrap_or_default();
        field_markup(&mut html, form_id, field, lang, &given, error);
    }
    let _ = write!(
        html,
        r#"<input type="hidden" name="{TOKEN_INPUT}" value="{}"><input type="hidden" name="{LANG_INPUT}" value="{}"><input type="hidden" name="{REFERRER_INPUT}" value="{}">"#,
        escape(token),
        lang.tag(),
        escape(referrer)
    );
    // The honeypot: hidden from people (off-screen, out of the tab order, hidden from screen readers); bots that
    // fill every input fill it too.
    let _ = write!(
        html,
        r#"<div class="rapport-form-hp" aria-hidden="true"><label>{}<input type="text" name="{HONEYPOT_INPUT}" value="" tabindex="-1" autocomplete="off"></label></div>"#,
        match lang {
            Lang::Zh => "请勿填写此项",
            Lang::En => "Leave this empty",
        }
    );
    let _ = write!(
        html,
        r#"<button type="submit" class="rapport-form-submit">{}</button></form>"#,
        escape(form.submit_label.get(lang))
    );
    html
}

fn field_markup(
    html: &mut String,
    form_id: &str,
    field: &FormField,
    lang: Lang,
    given: &[String],
    error: Option<&str>,
) {
    let id = format!("rapport-{}-{}", escape(form_id), escape(&field.key));
    let name = escape(&field.key);
    let first = given.first().map(String::as_str).unwrap_or_default();
    if field.kind == FieldKind::Hidden {
        let value = if first.is_empty() { field.default.as_deref().unwrap_or_default() } else { first };
        let _ = write!(html, r#"<input type="hidden" name="{name}" value="{}">"#, escape(value));
        return;
    }
    let required_mark =
        if field.required { r#" <span class="rapport-form-required" aria-hidden="true">*</span>"# } else { "" };
    let invalid = if error.is_some() { r#" aria-invalid="true""# } else { "" };
    let described = format!(r#" aria-describedby="{id}-error""#);
    let required = if field.required { " required" } else { "" };
    let placeholder = field
        .placeholder
        .as_ref()
        .map(|text| format!(r#" placeholder="{}""#, escape(text.get(lang))))
        .unwrap_or_default();
    let label = escape(field.label.get(lang));
    let _ = write!(html, r#"<div class="rapport-form-field rapport-form-{}">"#, field.kind.as_str());
    match field.kind {
        FieldKind::Select => {
            let _ = write!(html, r#"<label for="{id}">{label}{required_mark}</label>"#);
            let _ = write!(html, r#"<select id="{id}" name="{name}"{required}{invalid}{described}>"#);
            let prompt = match lang {
                Lang::Zh => "请选择",
                Lang::En => "Please choose",
            };
            let _ = write!(html, r#"<option value="">{prompt}</option>"#);
            for option in &field.options {
                let selected = if option.value == first { " selected" } else { "" };
                let _ = write!(
                    html,
                    r#"<option value="{}"{selected}>{}</option>"#,
                    escape(&option.value),
                    escape(option.label.get(lang))
                );
            }
            html.push_str("</select>");
        }
        FieldKind::Radio | FieldKind::Checkbox if !field.options.is_empty() => {
            let input = if field.kind == FieldKind::Radio { "radio" } else { "checkbox" };
            let _ = write!(html, r#"<fieldset{described}><legend>{label}{required_mark}</legend>"#);
            for (index, option) in field.options.iter().enumerate() {
                let checked = if given.iter().any(|value| value == &option.value) { " checked" } else { "" };
                let _ = write!(
                    html,
                    r#"<label class="rapport-form-choice" for="{id}-{index}"><input type="{input}" id="{id}-{index}" name="{name}" value="{}"{checked}{invalid}> {}</label>"#,
                    escape(&option.value),
                    escape(option.label.get(lang))
                );
            }
            html.push_str("</fieldset>");
        }
        FieldKind::Checkbox | FieldKind::Consent => {
            let checked = if !first.is_empty() && first != "false" { " checked" } else { "" };
            let text = match &field.consent {
                Some((_, text)) => escape(text.get(lang)),
                None => label.clone(),
            };
            let _ = write!(
                html,
                r#"<label class="rapport-form-choice" for="{id}"><input type="checkbox" id="{id}" name="{name}" value="true"{checked}{required}{invalid}{described}> {text}{required_mark}</label>"#
            );
        }
        FieldKind::Textarea => {
            let _ = write!(html, r#"<label for="{id}">{label}{required_mark}</label>"#);
            let _ = write!(
                html,
                r#"<textarea id="{id}" name="{name}" rows="4" maxlength="{}"{placeholder}{required}{invalid}{described}>{}</textarea>"#,
                field.max_length,
                escape(first)
            );
        }
        _ => {
            let (input, extra) = match field.kind {
                FieldKind::Email => ("email", r#" autocomplete="email" inputmode="email""#),
                FieldKind::Phone => ("tel", r#" autocomplete="tel" inputmode="tel""#),
                FieldKind::Number => ("text", r#" inputmode="decimal""#),
                FieldKind::Date => ("date", ""),
                _ => ("text", autocomplete(field)),
            };
            let _ = write!(html, r#"<label for="{id}">{label}{required_mark}</label>"#);
            let _ = write!(
                html,
                r#"<input type="{input}" id="{id}" name="{name}" value="{}" maxlength="{}"{extra}{placeholder}{required}{invalid}{described}>"#,
                escape(first),
                field.max_length
            );
        }
    }
    let _ = write!(
        html,
        r#"<p class="rapport-form-error" id="{id}-error"{}>{}</p></div>"#,
        if error.is_some() { "" } else { " hidden" },
        escape(error.unwrap_or_default())
    );
}

fn autocomplete(field: &FormField) -> &'static str {
    use super::definition::Target;
    match field.maps_to {
        Some(Target::Name) => r#" autocomplete="name""#,
        Some(Target::FirstName) => r#" autocomplete="given-name""#,
        Some(Target::LastName) => r#" autocomplete="family-name""#,
        Some(Target::Title) => r#" autocomplete="organization-title""#,
        Some(Target::Company) => r#" autocomplete="organization""#,
        Some(Target::Country) => r#" autocomplete="country-name""#,
        _ => "",
    }
}

/// Styles shared by the hosted page and the embed, scoped to `.rapport-form`.
pub const FORM_STYLE: &str = ".rapport-form{font:16px/1.5 system-ui,-apple-system,\"PingFang SC\",\"Microsoft YaHei\",sans-serif;color:#1f2328;max-width:560px}\
.rapport-form-field{margin:0 0 16px}.rapport-form label,.rapport-form legend{display:block;font-weight:600;margin:0 0 4px}\
.rapport-form input[type=text],.rapport-form input[type=email],.rapport-form input[type=tel],.rapport-form input[type=date],.rapport-form select,.rapport-form textarea{box-sizing:border-box;width:100%;padding:10px 12px;border:1px solid #c9ced6;border-radius:6px;font:inherit;background:#fff}\
.rapport-form input:focus,.rapport-form select:focus,.rapport-form textarea:focus{outline:2px solid #1a73e8;outline-offset:1px}\
.rapport-form fieldset{border:0;margin:0;padding:0}.rapport-form .rapport-form-choice{font-weight:400;display:flex;gap:8px;align-items:flex-start;margin:4px 0}\
.rapport-form .rapport-form-choice input{margin-top:5px}.rapport-form-required{color:#c62828}\
.rapport-form [aria-invalid=true]{border-color:#c62828}.rapport-form-error{color:#c62828;font-size:14px;margin:4px 0 0}\
.rapport-form-alert{background:#fdecea;color:#8a1c1c;border-radius:6px;padding:10px 12px;margin:0 0 16px}\
.rapport-form-hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}\
.rapport-form-submit{background:#1a73e8;color:#fff;border:0;border-radius:6px;padding:12px 24px;font:inherit;font-weight:600;cursor:pointer;width:100%}\
.rapport-form-submit:disabled{opacity:.6}.rapport-form-done{font:16px/1.5 system-ui,sans-serif;padding:16px;background:#e8f5e9;border-radius:6px}";

/// A whole page around some content: the hosted form, its thank-you, or an error.
pub fn page(lang: Lang, title: &str, body: &str, head_extra: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{margin:0;background:#f6f7f9}}main{{max-width:600px;margin:0 auto;padding:24px 16px;background:#fff;min-height:100vh;box-sizing:border-box}}h1{{font:600 24px/1.3 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:8px 0 12px}}.rapport-form-intro{{font:16px/1.6 system-ui,sans-serif;color:#444;white-space:pre-line}}.rapport-form-languages{{font:14px system-ui,sans-serif;text-align:right}}.rapport-form-languages a{{color:#1a73e8}}{style}</style>
{head_extra}</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        lang = lang.tag(),
        title = escape(title),
        style = FORM_STYLE,
    )
}

/// The links that switch the hosted page's language; `carried` is the rest of the query string to keep (the
/// hidden fields' values, such as a campaign), already encoded.
pub fn language_links(path: &str, lang: Lang, carried: &str) -> String {
    let link = |target: Lang, text: &str| {
        if target == lang {
            format!(r#"<strong aria-current="true">{text}</strong>"#)
        } else {
            format!(
                r#"<a href="{}?lang={}{}" hreflang="{}" lang="{}">{text}</a>"#,
                escape(path),
                target.tag(),
                escape(carried),
                target.tag(),
                target.tag()
            )
        }
    };
    format!(r#"<nav class="rapport-form-languages">{} · {}</nav>"#, link(Lang::Zh, "中文"), link(Lang::En, "English"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
