//! API keys and passwords: how tokens are minted and hashed, and the extractor that authenticates a request.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use rand::RngCore;
use rand::rngs::OsRng;
use rapport_domain::{ApiKeyId, Permission, Role, WorkspaceId};
use rapport_store::Store;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

const TOKEN_PREFIX: &str = "rk_";
/// How stale `last_used_at` may get before a request refreshes it: one write per key per minute, not per request.
const TOUCH_INTERVAL: Duration = Duration::seconds(60);

/// A freshly minted API token. Shown once; only its hash is stored.
pub struct MintedToken {
    pub token: String,
    pub prefix: String,
    pub hash: String,
}

/// Mints a token: `rk_` followed by 32 random bytes in hex.
pub fn mint_token() -> MintedToken {
    let mut bytes = [0_u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    describe_token(&token)
}

/// The stored parts of a token chosen by the operator (`RAPPORT_ADMIN_TOKEN`).
pub fn describe_token(token: &str) -> MintedToken {
    let prefix: String = token.chars().take(TOKEN_PREFIX.len() + 6).collect();
    MintedToken { token: token.to_owned(), prefix, hash: hash_token(token) }
}

/// Tokens carry 256 bits of entropy, so a fast hash is the right tool: SHA-256, hex-encoded.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Hashes a password with argon2id. CPU-heavy by design: call it off the async executor.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("hashing the password failed: {error}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Generates a readable random password for first start.
pub fn generate_password() -> String {
    let mut bytes = [0_u8; 12];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The caller of an API request, authenticated by `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub workspace: WorkspaceId,
    pub key_id: ApiKeyId,
    pub role: Role,
}

impl Caller {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("the role {} may not do this", self.role)))
        }
    }

    pub fn actor(&self) -> rapport_store::Actor {
        rapport_store::Actor::ApiKey(self.key_id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header_value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send an API key as Authorization: Bearer <key>"))?;
        let token = header_value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be Bearer <key>"))?;
        authenticate(&state.store, token).await
    }
}

async fn authenticate(store: &Arc<dyn Store>, token: &str) -> Result<Caller, ApiError> {
    let key = store
        .api_key_by_hash(&hash_token(token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
    let now = Utc::now();
    if key.last_used_at.is_none_or(|last| now - last > TOUCH_INTERVAL) {
        store.touch_api_key(key.id, now).await?;
    }
    Ok(Caller { workspace: key.workspace_id, key_id: key.id, role: key.role })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_passwords() {
        let minted = mint_token();
        assert!(minted.token.starts_with("rk_") && minted.token.len() == 67);
        assert_eq!(minted.hash, hash_token(&minted.token));
        assert_eq!(minted.prefix.len(), 9);
        let hash = hash_password("correct horse").unwrap_or_default();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
    }
}
