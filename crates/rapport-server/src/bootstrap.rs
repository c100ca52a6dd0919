//! First start: the `default` workspace with its owner user and an owner API key.

use anyhow::Context;
use rapport_domain::{BoundedText, EmailAddress, Role, Slug};
use rapport_http::auth::{describe_token, generate_password, hash_password, mint_token};
use rapport_store::{NewApiKey, NewUser, Store, StoreError, Workspace};

use crate::config::AdminConfig;

pub const DEFAULT_WORKSPACE: &str = "default";
const DEFAULT_ADMIN_EMAIL: &str = "admin@rapport.local";

/// What first start created; the generated secrets are shown to the operator once and never again.
#[derive(Debug, Default)]
pub struct BootstrapReport {
    pub workspace_created: bool,
    pub admin_email: Option<String>,
    pub generated_password: Option<String>,
    pub generated_token: Option<String>,
    pub admin_token_added: bool,
}

impl BootstrapReport {
    /// Lines for the operator's terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.workspace_created {
            lines.push(format!("Created workspace `{DEFAULT_WORKSPACE}`."));
        }
        if let Some(email) = &self.admin_email {
            lines.push(format!("Owner login: {email}"));
        }
        if let Some(password) = &self.generated_password {
            lines.push(format!("Owner password (shown once, change it after logging in): {password}"));
        }
        if let Some(token) = &self.generated_token {
            lines.push(format!("Owner API key (shown once): {token}"));
        }
        lines
    }
}

pub async fn bootstrap(store: &dyn Store, admin: &AdminConfig) -> anyhow::Result<BootstrapReport> {
    let mut report = BootstrapReport::default();
    let workspace = match store.workspace_by_slug(DEFAULT_WORKSPACE).await? {
        Some(workspace) => workspace,
        None => {
            let workspace = create_default_workspace(store, admin, &mut report).await?;
            report.workspace_created = true;
            workspace
        }
    };
    if let Some(token) = &admin.token {
        report.admin_token_added = ensure_admin_token(store, &workspace, token.expose()).await?;
    }
    Ok(report)
}

async fn create_default_workspace(
    store: &dyn Store,
    admin: &AdminConfig,
    report: &mut BootstrapReport,
) -> anyhow::Result<Workspace> {
    let slug = Slug::parse(DEFAULT_WORKSPACE).context("the default workspace slug")?;
    let workspace = store.create_workspace(&slug, "Default").await.context("creating the default workspace")?;

    let email_text = admin.email.clone().unwrap_or_else(|| DEFAULT_ADMIN_EMAIL.to_owned());
    let email = EmailAddress::parse(&email_text)
        .map_err(|error| anyhow::anyhow!("RAPPORT_ADMIN_EMAIL {email_text:?} {error}"))?;
    let password = match &admin.password {
        Some(password) => password.expose().to_owned(),
        None => {
            let generated = generate_password();
            report.generated_password = Some(generated.clone());
            generated
        }
    };
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let name = BoundedText::parse("Owner", 100).context("the owner's name")?;
    store
        .create_user(workspace.id, NewUser { email: email.clone(), name, role: Role::Owner, password_hash })
        .await
        .context("creating the owner user")?;
    report.admin_email = Some(email.into_string());

    if admin.token.is_none() {
        let minted = mint_token();
        let name = BoundedText::parse("Owner key (first start)", 100).context("the key name")?;
        let key = NewApiKey { name, role: Role::Owner, prefix: minted.prefix, token_hash: minted.hash };
        store.create_api_key(workspace.id, key).await.context("creating the owner API key")?;
        report.generated_token = Some(minted.token);
    }
    Ok(workspace)
}

/// Makes `RAPPORT_ADMIN_TOKEN` a valid owner key. A token that was revoked stays revoked.
async fn ensure_admin_token(store: &dyn Store, workspace: &Workspace, token: &str) -> anyhow::Result<bool> {
    let described = describe_token(token);
    if store.api_key_by_hash(&described.hash).await?.is_some() {
        return Ok(false);
    }
    let name = BoundedText::parse("Owner key (RAPPORT_ADMIN_TOKEN)", 100).context("the key name")?;
    let key = NewApiKey { name, role: Role::Owner, prefix: described.prefix, token_hash: described.hash };
    match store.create_api_key(workspace.id, key).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => {
            tracing::warn!("RAPPORT_ADMIN_TOKEN names a revoked API key; it stays revoked");
            Ok(false)
        }
        Err(error) => Err(error).context("storing RAPPORT_ADMIN_TOKEN"),
    }
}
