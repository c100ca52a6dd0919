//! Identities: the keys by which a person is recognised (email, phone, external user id, anonymous id, WeChat ids).
//! An identity value is unique within a workspace and always belongs to exactly one contact.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKind {
    Email,
    Phone,
    UserId,
    AnonymousId,
    WechatOpenid,
    WechatUnionid,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 6] = [
        IdentityKind::Email,
        IdentityKind::Phone,
        IdentityKind::UserId,
        IdentityKind::AnonymousId,
        IdentityKind::WechatOpenid,
        IdentityKind::WechatUnionid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Email => "email",
            IdentityKind::Phone => "phone",
            IdentityKind::UserId => "user_id",
            IdentityKind::AnonymousId => "anonymous_id",
            IdentityKind::WechatOpenid => "wechat_openid",
            IdentityKind::WechatUnionid => "wechat_unionid",
        }
    }

    pub fn parse(text: &str) -> Option<IdentityKind> {
        IdentityKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One identity in its normalised form, ready to be compared and stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    kind: IdentityKind,
    value: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("{0}")]
    Email(#[from] EmailError),
    #[error("{0}")]
    Phone(#[from] PhoneError),
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 256 characters")]
    TooLong,
}

impl Identity {
    /// Normalises a raw value for the given kind: emails are lower-cased, phone numbers reduced to digits with an
    /// optional leading `+`, opaque ids trimmed.
    pub fn parse(kind: IdentityKind, raw: &str) -> Result<Identity, IdentityError> {
        let value = match kind {
            IdentityKind::Email => EmailAddress::parse(raw)?.into_string(),
            IdentityKind::Phone => PhoneNumber::parse(raw)?.into_string(),
            _ => {
                let trimmed = raw.trim();
                if trimmed.is_empty() {
                    return Err(IdentityError::Empty);
                }
                if trimmed.chars().count() > 256 {
                    return Err(IdentityError::TooLong);
                }
                trimmed.to_owned()
            }
        };
        Ok(Identity { kind, value })
    }

    pub fn email(email: &EmailAddress) -> Identity {
        Identity { kind: IdentityKind::Email, value: email.as_str().to_owned() }
    }

    pub fn phone(phone: &PhoneNumber) -> Identity {
        Identity { kind: IdentityKind::Phone, value: phone.as_str().to_owned() }
    }

    /// Rebuilds an identity that was normalised before it was stored.
    pub fn from_stored(kind: IdentityKind, value: String) -> Identity {
        Identity { kind, value }
    }

    pub fn kind(&self) -> IdentityKind {
        self.kind
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

/// An email address in canonical form (trimmed, lower-cased). The check is deliberately pragmatic: one `@`, a
/// non-empty local part, a domain with a dot and no spaces — the definitive test is whether mail is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("is not a valid email address")]
    Invalid,
    #[error("must be at most 254 characters")]
    TooLong,
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<EmailAddress, EmailError> {
        let candidate = raw.trim().to_lowercase();
        if candidate.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = candidate.split_once('@').ok_or(EmailError::Invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == ',' || c == ';');
        if !domain_ok || !local_ok {
            return Err(EmailError::Invalid);
        }
        Ok(EmailAddress(candidate))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, domain)| domain).unwrap_or_default()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A phone number reduced to its digits, keeping a leading `+` for international form. Separators people type
/// (spaces, dashes, dots, parentheses) are dropped; anything else is an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("may contain only digits, spaces, dashes, dots, parentheses and a leading +")]
    InvalidCharacter,
    #[error("must have between 5 and 20 digits")]
    WrongLength,
}

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<PhoneNumber, PhoneError> {
        let trimmed = raw.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(rest.len() + 1);
        if plus {
            digits.push('+');
        }
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::InvalidCharacter),
            }
        }
        let count = digits.len() - usize::from(plus);
        if !(5..=20).contains(&count) {
            return Err(PhoneError::WrongLength);
        }
        Ok(PhoneNumber(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Normalises a company's web domain: lower case, without scheme, `www.`, path or trailing dot, so that
/// `https://www.Example.com/about` and `example.com` are the same company.
pub fn normalize_domain(raw: &str) -> Option<String> {
    let mut text = raw.trim().to_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = text.strip_prefix(scheme) {
            text = rest.to_owned();
        }
    }
    let host = text.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    let host = host.strip_prefix("www.").unwrap_or(host).trim_end_matches('.');
    let valid = host.contains('.')
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && host.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    valid.then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_canonical() {
        assert_eq!(
            EmailAddress::parse("  Li.Lei@Example.COM ").map(|e| e.into_string()),
            Ok("li.lei@example.com".into())
        );
        assert_eq!(EmailAddress::parse("王@例子.中国").map(|e| e.domain().to_owned()), Ok("例子.中国".into()));
        for bad in ["", "no-at", "a@b", "a b@c.com", "@c.com", "a@.com", "a@c..com", "a@c.com.", "a@@c.com"] {
            assert_eq!(EmailAddress::parse(bad), Err(EmailError::Invalid), "{bad}");
        }
    }

    #[test]
    fn phones_keep_digits() {
        assert_eq!(PhoneNumber::parse("+86 138-0013-8000").map(|p| p.into_string()), Ok("+8613800138000".into()));
        assert_eq!(PhoneNumber::parse("(010) 6552 9988").map(|p| p.into_string()), Ok("01065529988".into()));
        assert_eq!(PhoneNumber::parse("12a45"), Err(PhoneError::InvalidCharacter));
        assert_eq!(PhoneNumber::parse("+1 2"), Err(PhoneError::WrongLength));
    }

    #[test]
    fn domains_are_normalised() {
        assert_eq!(normalize_domain("https://www.Example.com/about?x=1"), Some("example.com".into()));
        assert_eq!(normalize_domain("sub.example.cn:8443"), Some("sub.example.cn".into()));
        assert_eq!(normalize_domain("localhost"), None);
        assert_eq!(normalize_domain("bad domain.com"), None);
    }

    #[test]
    fn opaque_identities_are_trimmed() {
        let identity = Identity::parse(IdentityKind::UserId, "  u-42 ");
        assert_eq!(identity.map(|i| i.value().to_owned()), Ok("u-42".into()));
        assert_eq!(Identity::parse(IdentityKind::AnonymousId, "   "), Err(IdentityError::Empty));
    }
}
