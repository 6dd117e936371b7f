-- Each app's traffic per minute (Unix minutes), as routers report it: requests and 5xx
-- answers by latency bucket (`skiff_api::canary::latency_bucket`), kept for two days.
CREATE TABLE traffic (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    minute BIGINT NOT NULL,
    bucket INTEGER NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    PRIMARY KEY (app_id, minute, bucket)
);
CREATE INDEX traffic_minute ON traffic (minute);
