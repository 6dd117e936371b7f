//! Whole-platform tests: Skiff in one process on ephemeral loopback ports, driven by the
//! real `skiff` CLI code, the real `git` over the real OpenSSH client, the real Docker
//! engine and HTTP through the router.

mod acme;
mod api;
mod backups;
mod browser;
mod builds;
mod controller_kill;
mod dashboard;
mod delivery;
mod harness;
mod integrations;
mod logger_restart;
mod newcomer;
mod observability;
mod operations;
mod readiness;
mod registry_clients;
mod replicas;
mod sharing;
mod supervision;
mod swarm;
mod tenants;
mod tls;
mod upgrades;
mod verbs;
