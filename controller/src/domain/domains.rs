//! Custom domains: which names an app answers to besides its own under the platform's
//! domain. A name, or a wildcard over names, that another owner's app holds is theirs.

use std::collections::HashMap;

use skiff_api::Domain;
use skiff_api::rules::CustomDomain;

use crate::db::{AppRow, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// An app's custom domains.
pub struct Domains<'a>(&'a Controller);

impl Controller {
    pub fn domains(&self) -> Domains<'_> {
        Domains(self)
    }
}

impl Domains<'_> {
    /// The app's domains.
    pub async fn list(&self, app: &AppRow) -> Result<Vec<Domain>, ApiError> {
        let domains = self.0.db.domains(Some(app.id)).await?;
        Ok(domains.into_iter().map(|(_, domain, created_at)| Domain { domain, created_at }).collect())
    }

    /// Adds a domain, unless another owner's app holds it or a name it covers.
    pub async fn add(&self, user: &UserRow, app: &AppRow, domain: &str) -> Result<(), ApiError> {
        let c = self.0;
        let domain = CustomDomain::parse(domain, &c.config.domain).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let owners: HashMap<i64, i64> = c.db.apps(None).await?.into_iter().map(|a| (a.id, a.owner_id)).collect();
        let taken = c.db.domains(None).await?.into_iter().find(|(app_id, held, _)| {
            owners.get(app_id).is_some_and(|owner| *owner != app.owner_id) && domain.overlaps(held)
        });
        if let Some((_, held, _)) = taken {
            return Err(ApiError::Conflict(format!("{domain} is already in use by another app ({held})")));
        }
        if !c.db.add_domain(app.id, domain.as_str()).await? {
            return Err(ApiError::Conflict(format!("{domain} is already in use")));
        }
        let message = format!("{} added domain {domain}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        // With automatic certificates, it gets one.
        c.acme_wake.notify_one();
        Ok(())
    }

    /// Removes a domain.
    pub async fn remove(&self, user: &UserRow, app: &AppRow, domain: &str) -> Result<(), ApiError> {
        let c = self.0;
        let domain = domain.to_ascii_lowercase();
        if !c.db.remove_domain(app.id, &domain).await? {
            return Err(ApiError::NotFound(format!("{} has no domain {domain}; see `skiff domains`", app.name)));
        }
        // Its automatic certificate is of no more use (one of the user's own stays).
        c.db.remove_cert(app.id, &crate::acme::certificate_name(&domain)).await?;
        let message = format!("{} removed domain {domain}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        Ok(())
    }
}
