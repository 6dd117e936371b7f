//! Accounts: registration, sign-in, API tokens, SSH keys, and the registry's sign-in.

use std::net::IpAddr;
use std::time::Instant;

use skiff_api::{Credentials, Key, RegistryAccess, RegistryGrant, Session, Username};

use crate::auth::{hash_password, new_token, token_hash, verify_password};
use crate::config::Registration;
use crate::db::UserRow;
use crate::error::ApiError;
use crate::events::Event;
use crate::keys;
use crate::state::Controller;
use crate::throttle::Attempt;
use skiff_api::EventKind;

/// Accounts and their credentials.
pub struct Accounts<'a>(&'a Controller);

impl Controller {
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts(self)
    }
}

impl Accounts<'_> {
    /// Creates an account. The first one is always possible (it becomes the admin); after
    /// it, the registration mode decides: anyone, admins only (for others), or nobody.
    pub async fn register(&self, requester: Option<&UserRow>, body: &Credentials) -> Result<Session, ApiError> {
        let c = self.0;
        if c.db.user_count().await? > 0 {
            let by_admin = requester.is_some_and(|u| u.admin);
            match c.config.registration {
                Registration::Open => {}
                Registration::AdminOnly if by_admin => {}
                Registration::AdminOnly => {
                    return Err(ApiError::Forbidden(
                        "registration is for admins only here; ask an admin to run `skiff auth:register`".into(),
                    ));
                }
                Registration::Disabled => return Err(ApiError::Forbidden("registration is disabled".into())),
            }
        }
        if body.password.len() < 8 {
            return Err(ApiError::BadRequest("password too short; use at least 8 characters".into()));
        }
        let hash = hash_password(&body.password)?;
        let user = c.db.create_user(&body.username, &hash).await?.ok_or_else(|| {
            ApiError::Conflict(format!("user `{}` already exists; log in with `skiff auth:login`", body.username))
        })?;
        let role = if user.admin { "admin" } else { "user" };
        let message = match requester {
            Some(by) => format!("{} created {role} {}", by.username, user.username),
            None => format!("{} registered as {role}", user.username),
        };
        let actor = requester.map_or(&user.username, |by| &by.username);
        c.events.emit_platform(Event::new(EventKind::Platform, message).by(actor)).await;
        self.session(&user).await
    }

    /// Signs in with a password, counting failures per user name and client address.
    pub async fn login(&self, address: Option<IpAddr>, body: &Credentials) -> Result<Session, ApiError> {
        let user = self.check_password(address, body).await?;
        self.session(&user).await
    }

    /// Signs in to the dashboard: a session whose token works for `lasts`.
    pub async fn dashboard_session(
        &self,
        address: Option<IpAddr>,
        body: &Credentials,
        lasts: std::time::Duration,
    ) -> Result<Session, ApiError> {
        let c = self.0;
        let user = self.check_password(address, body).await?;
        let now_ms = crate::clock::now_ms();
        c.db.remove_expired_tokens(now_ms).await?;
        let token = new_token();
        let expires_ms = now_ms.saturating_add(crate::clock::millis(lasts));
        c.db.add_token(user.id, &token_hash(&token), Some(expires_ms)).await?;
        Ok(Session { username: user.username.clone(), admin: user.admin, token })
    }

    /// The user whose password this is, counting failures per user name and client address
    /// (and refusing once there were too many).
    async fn check_password(&self, address: Option<IpAddr>, body: &Credentials) -> Result<UserRow, ApiError> {
        let c = self.0;
        let attempt = Attempt { username: Some(body.username.as_str()), address };
        c.logins.check(attempt, Instant::now()).map_err(ApiError::TooManyAttempts)?;
        match c.db.user_by_name(&body.username).await? {
            Some(user) if verify_password(&body.password, &user.password_hash) => Ok(user),
            _ => {
                c.logins.failed(attempt, Instant::now());
                Err(ApiError::Forbidden("wrong user name or password".into()))
            }
        }
    }

    async fn session(&self, user: &UserRow) -> Result<Session, ApiError> {
        let token = new_token();
        self.0.db.add_token(user.id, &token_hash(&token), None).await?;
        Ok(Session { username: user.username.clone(), admin: user.admin, token })
    }

    /// Revokes an API token (`skiff auth:logout`).
    pub async fn revoke(&self, token: &str) -> Result<(), ApiError> {
        if self.0.db.remove_token(&token_hash(token)).await? { Ok(()) } else { Err(ApiError::TokenRejected) }
    }

    /// The registry's sign-in: the secret is a user's API token (the password field of
    /// `docker login`) or the user's password; the grant says what the user may do with
    /// the repository asked for.
    pub async fn registry_grant(&self, access: &RegistryAccess) -> Result<RegistryGrant, ApiError> {
        let c = self.0;
        let attempt = Attempt {
            username: access.username.as_deref(),
            address: access.client.as_deref().and_then(|a| a.parse().ok()),
        };
        c.logins.check(attempt, Instant::now()).map_err(ApiError::TooManyAttempts)?;
        let by_token = c.db.user_by_token(&token_hash(&access.secret)).await?;
        let user = match (by_token, &access.username) {
            (Some(user), Some(name)) if user.username.as_str() == name => Some(user),
            (Some(user), None) => Some(user),
            (_, Some(name)) => match name.parse::<Username>() {
                Ok(name) => {
                    c.db.user_by_name(&name).await?.filter(|u| verify_password(&access.secret, &u.password_hash))
                }
                Err(_) => None,
            },
            (None, None) => None,
        };
        let Some(user) = user else {
            c.logins.failed(attempt, Instant::now());
            return Err(ApiError::Unauthenticated);
        };
        Ok(c.registry_grant(&user, access.repository.as_deref()).await)
    }

    /// The user's SSH keys.
    pub async fn keys(&self, user: &UserRow) -> Result<Vec<Key>, ApiError> {
        let keys = self.0.db.keys(user.id).await?;
        Ok(keys
            .into_iter()
            .map(|k| Key { id: k.id, fingerprint: k.fingerprint, comment: k.comment, created_at: k.created_at })
            .collect())
    }

    /// Adds an OpenSSH public key for `git push`.
    pub async fn add_key(&self, user: &UserRow, public_key: &str) -> Result<Key, ApiError> {
        let c = self.0;
        let key = keys::parse(public_key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let row =
            c.db.add_key(user.id, &key.fingerprint, &key.line, &key.comment)
                .await?
                .ok_or_else(|| ApiError::Conflict(format!("key {} is already registered", key.fingerprint)))?;
        let message = format!("{} added SSH key {}", user.username, row.fingerprint);
        c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
        Ok(Key { id: row.id, fingerprint: row.fingerprint, comment: row.comment, created_at: row.created_at })
    }

    /// Removes one of the user's keys.
    pub async fn remove_key(&self, user: &UserRow, id: i64) -> Result<(), ApiError> {
        let c = self.0;
        if !c.db.remove_key(user.id, id).await? {
            return Err(ApiError::NotFound(format!("no key {id}; see `skiff keys`")));
        }
        c.events
            .emit_platform(
                Event::new(EventKind::Platform, format!("{} removed SSH key {id}", user.username)).by(&user.username),
            )
            .await;
        Ok(())
    }
}
