-- Automatic certificates (ACME, RFC 8555).
-- The platform's account at each ACME directory: its credentials (key and account URL)
-- sealed with a key derived from the platform's service token.
CREATE TABLE acme_accounts (
    directory TEXT PRIMARY KEY,
    sealed_credentials TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- Which controller orders certificates: one row, held until `until_ms` (Unix ms) and
-- renewed while its holder works.
CREATE TABLE acme_lease (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
-- Apps whose custom domains get certificates by themselves.
CREATE TABLE acme_apps (
    app_id BIGINT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    enabled_at TEXT NOT NULL
);
-- Each such domain's certificate: pending, valid or failed; the order under way (its URL
-- at the ACME server, so that a restarted controller goes on with it); when to try next.
CREATE TABLE acme_domains (
    domain TEXT PRIMARY KEY REFERENCES domains(domain) ON DELETE CASCADE,
    state TEXT NOT NULL,
    order_url TEXT,
    valid_until TEXT,
    last_error TEXT,
    failures BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Answers routers give (kind: http-01 or tls-alpn-01) while an order waits for the ACME
-- server to check them.
CREATE TABLE acme_challenges (
    token TEXT PRIMARY KEY,
    domain TEXT NOT NULL REFERENCES domains(domain) ON DELETE CASCADE,
    key_authorization TEXT NOT NULL,
    kind TEXT NOT NULL
);
