//! The API's OpenAPI 3.0 document, served at `/v2/openapi.json`, built from one table of
//! operations. A whole-platform test calls every operation it lists, so the document
//! cannot name a route the controller does not serve.

use serde_json::{Value, json};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anyone,
    /// A user's bearer token.
    User,
    /// The platform's service token (builder, registry, router).
    Service,
}

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub caller: Caller,
}

const fn op(method: &'static str, path: &'static str, caller: Caller, summary: &'static str) -> Operation {
    Operation { method, path, summary, caller }
}

use Caller::{Anyone, Service, User};

/// Every operation the controller serves.
pub const OPERATIONS: &[Operation] = &[
    op("get", "/healthz", Anyone, "Liveness"),
    op("get", "/readyz", Anyone, "Readiness"),
    op("get", "/v2/openapi.json", Anyone, "This document"),
    op("post", "/v2/auth/register", Anyone, "Create an account (the first is admin; then per the registration mode)"),
    op("post", "/v2/auth/login", Anyone, "Log in; returns a token"),
    op("get", "/v2/auth/whoami", User, "Who the token belongs to"),
    op("delete", "/v2/auth/token", User, "Revoke the token"),
    op("get", "/v2/keys", User, "List SSH keys"),
    op("post", "/v2/keys", User, "Add an SSH key"),
    op("delete", "/v2/keys/{id}", User, "Remove an SSH key"),
    op("get", "/v2/apps", User, "List apps"),
    op("post", "/v2/apps", User, "Create an app"),
    op("get", "/v2/apps/{app}", User, "Show an app"),
    op("delete", "/v2/apps/{app}", User, "Destroy an app"),
    op("get", "/v2/apps/{app}/releases", User, "List releases"),
    op("post", "/v2/apps/{app}/releases/rollback", User, "Roll back to an earlier release"),
    op("get", "/v2/apps/{app}/config", User, "Show the config"),
    op("patch", "/v2/apps/{app}/config", User, "Set and unset config keys (a new release)"),
    op("get", "/v2/apps/{app}/formation", User, "Process types and their scale"),
    op("post", "/v2/apps/{app}/scale", User, "Scale process types"),
    op("get", "/v2/apps/{app}/ps", User, "List containers"),
    op("post", "/v2/apps/{app}/ps/restart", User, "Replace containers without downtime"),
    op("post", "/v2/apps/{app}/run", User, "Run a one-off command (JSON lines)"),
    op("get", "/v2/apps/{app}/perms", User, "List collaborators"),
    op("post", "/v2/apps/{app}/perms", User, "Add a collaborator"),
    op("delete", "/v2/apps/{app}/perms/{username}", User, "Remove a collaborator"),
    op("post", "/v2/apps/{app}/transfer", User, "Give the app to another user"),
    op("get", "/v2/apps/{app}/domains", User, "List custom domains"),
    op("post", "/v2/apps/{app}/domains", User, "Add a custom domain"),
    op("delete", "/v2/apps/{app}/domains/{domain}", User, "Remove a custom domain"),
    op("get", "/v2/apps/{app}/drains", User, "List log drains with their deliveries"),
    op("post", "/v2/apps/{app}/drains", User, "Add a log drain (syslog://, syslog+tls://, https://)"),
    op("delete", "/v2/apps/{app}/drains/{id}", User, "Remove a log drain"),
    op("get", "/v2/drains", User, "List platform-wide log drains (admins)"),
    op("post", "/v2/drains", User, "Add a platform-wide log drain (admins)"),
    op("delete", "/v2/drains/{id}", User, "Remove a platform-wide log drain (admins)"),
    op("get", "/v2/apps/{app}/certs", User, "List TLS certificates"),
    op("post", "/v2/apps/{app}/certs", User, "Add a TLS certificate (PEM chain and key)"),
    op("delete", "/v2/apps/{app}/certs/{name}", User, "Remove a TLS certificate"),
    op("post", "/v2/apps/{app}/certs/{name}/domains", User, "Serve a certificate for one of the app's domains"),
    op("delete", "/v2/apps/{app}/certs/{name}/domains/{domain}", User, "Stop serving a certificate for a domain"),
    op(
        "get",
        "/v2/apps/{app}/access",
        User,
        "Show what the router lets through (body limit, allowed and denied addresses)",
    ),
    op("put", "/v2/apps/{app}/access", User, "Set what the router lets through"),
    op("get", "/v2/apps/{app}/tls", User, "Show the HTTPS policy (force HTTPS, HSTS)"),
    op("put", "/v2/apps/{app}/tls", User, "Set the HTTPS policy"),
    op("post", "/v2/apps/{app}/maintenance", User, "Turn maintenance mode on or off"),
    op("get", "/v2/apps/{app}/limits", User, "Show limits"),
    op("patch", "/v2/apps/{app}/limits", User, "Change limits"),
    op("get", "/v2/apps/{app}/healthchecks", User, "Show health checks"),
    op("patch", "/v2/apps/{app}/healthchecks", User, "Change health checks"),
    op("get", "/v2/apps/{app}/builds", User, "List builds"),
    op("get", "/v2/apps/{app}/builds/{id}", User, "Show a build with its log"),
    op("post", "/v2/apps/{app}/deploy", User, "Release an existing image"),
    op("get", "/v2/apps/{app}/logs", User, "Recent log lines, or with follow=true a stream of JSON lines"),
    op("get", "/v2/apps/{app}/events", User, "The app's audit trail: who did what and when"),
    op("get", "/v2/events", User, "Every event, the platform's and every app's (admins)"),
    op("get", "/v2/stacks", User, "List stacks"),
    op("post", "/v2/stacks/{name}", User, "Import a root filesystem tarball as a stack (admins)"),
    op("post", "/v2/admin/gc", User, "Apply image retention and collect the registry's garbage (admins)"),
    op("get", "/v2/routes", Service, "The route table once its version differs from `after` (long poll)"),
    op("get", "/v2/hooks/drains", Service, "Every log drain, for the logger"),
    op("get", "/v2/hooks/keys/{fingerprint}", Service, "Who owns an SSH key"),
    op("get", "/v2/hooks/apps/{app}/access/{username}", Service, "May a user push to an app"),
    op("post", "/v2/hooks/builds", Service, "Record a build (a succeeded one becomes a release)"),
    op("get", "/v2/hooks/apps/{app}/releases/{version}", Service, "One release, to follow its rollout"),
    op("post", "/v2/hooks/registry/access", Service, "What registry credentials may do"),
];

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for operation in OPERATIONS {
        let parameters: Vec<Value> = operation
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = match operation.caller {
            Caller::Anyone => json!([]),
            Caller::User | Caller::Service => json!([{"bearer": []}]),
        };
        let mut entry = json!({
            "summary": operation.summary,
            "parameters": parameters,
            "security": security,
            "responses": {
                "200": {"description": "Success (201 for creations, 204 without a body)"},
                "default": {
                    "description": "An error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        });
        if operation.caller == Caller::Service {
            entry["description"] = "For Skiff's own components: the bearer is the service token.".into();
        }
        let path = paths.entry(operation.path).or_insert_with(|| json!({}));
        path[operation.method] = entry;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Skiff controller API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_in_the_document_once() {
        let document = document();
        let count: usize = document["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(count, OPERATIONS.len(), "no method is listed twice for a path");
        let app = &document["paths"]["/v2/apps/{app}/builds/{id}"]["get"];
        assert_eq!(app["parameters"].as_array().unwrap().len(), 2);
    }
}
