//! Releases and the config they carry: numbered in order per app, created in one transaction with the config they change.

use super::*;

impl Db {
    /// Creates the next release of an app.
    pub async fn create_release(&self, app: &AppRow, new: &NewRelease<'_>) -> Result<Release, DbError> {
        let mut tx = self.writer.begin().await?;
        Self::lock_app(&mut tx, app.id).await?;
        let release = Self::insert_release(&mut tx, app, new).await?;
        tx.commit().await?;
        Ok(release)
    }

    /// Changes an app's config with `edit` (the result must pass `check`) and, with `base`
    /// (the release to build on), makes the next release: `base`'s build with the new
    /// config. One transaction that first takes the app's write lock, so that concurrent
    /// changes each build on the one before and get consecutive versions.
    pub async fn change_config<E>(
        &self,
        app: &AppRow,
        edit: impl FnOnce(&mut BTreeMap<String, String>),
        check: impl FnOnce(&BTreeMap<String, String>) -> Result<(), E>,
        base: Option<&Release>,
        created_by: &Username,
        summary: &str,
    ) -> Result<Result<(BTreeMap<String, String>, Option<Release>), E>, DbError> {
        let mut tx = self.writer.begin().await?;
        Self::lock_app(&mut tx, app.id).await?;
        let text: String =
            sqlx::query("SELECT config FROM apps WHERE id = $1").bind(app.id).fetch_one(&mut *tx).await?.get(0);
        let mut config = config_parse(&text)?;
        edit(&mut config);
        if let Err(problem) = check(&config) {
            return Ok(Err(problem));
        }
        sqlx::query("UPDATE apps SET config = $1 WHERE id = $2")
            .bind(config_json(&config)?)
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        let release = match base {
            Some(base) => {
                let new = NewRelease {
                    image: &base.image,
                    build: base.build,
                    git_sha: base.git_sha.as_deref(),
                    procfile: &base.procfile,
                    config: &config,
                    created_by,
                    summary,
                };
                Some(Self::insert_release(&mut tx, app, &new).await?)
            }
            None => None,
        };
        tx.commit().await?;
        Ok(Ok((config, release)))
    }

    /// Takes an app's write lock for the rest of the transaction: a write first (a row
    /// lock on Postgres, the database's write lock on SQLite), so that what the
    /// transaction reads next no other writer changes before it commits.
    pub(super) async fn lock_app(tx: &mut sqlx::Transaction<'_, sqlx::Any>, app_id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE apps SET id = id WHERE id = $1").bind(app_id).execute(&mut **tx).await?;
        Ok(())
    }

    pub(super) async fn insert_release(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        app: &AppRow,
        new: &NewRelease<'_>,
    ) -> Result<Release, DbError> {
        let NewRelease { image, build, git_sha, procfile, config, created_by, summary } = *new;
        let procfile_json = procfile_json(procfile)?;
        let created_at = now();
        let phase = procfile
            .keys()
            .any(|process| ProcessType::is_release(process.as_str()))
            .then(|| ReleasePhase { state: PhaseState::Running, output: String::new() });
        // A release on trial never becomes current once a newer one is made: its canary ends.
        sqlx::query("UPDATE releases SET state = 'superseded' WHERE app_id = $1 AND state = 'trial'")
            .bind(app.id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("UPDATE canaries SET state = 'superseded', ended_at = $1 WHERE app_id = $2 AND state = 'running'")
            .bind(&created_at)
            .bind(app.id)
            .execute(&mut **tx)
            .await?;
        let version: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE app_id = $1")
            .bind(app.id)
            .fetch_one(&mut **tx)
            .await?
            .get(0);
        sqlx::query(
            "INSERT INTO releases (app_id, version, image, build_id, git_sha, procfile, config, created_by, summary, created_at, state, phase)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11)",
        )
        .bind(app.id)
        .bind(version)
        .bind(image)
        .bind(build)
        .bind(git_sha)
        .bind(&procfile_json)
        .bind(config_json(config)?)
        .bind(created_by.as_str())
        .bind(summary)
        .bind(&created_at)
        .bind(phase.as_ref().map(|p| enum_text(&p.state)))
        .execute(&mut **tx)
        .await?;
        Ok(Release {
            app: app.name.clone(),
            version: version as u32,
            image: image.to_owned(),
            build,
            git_sha: git_sha.map(str::to_owned),
            procfile: procfile.clone(),
            config: config.clone(),
            state: ReleaseState::Pending,
            failure: None,
            created_by: created_by.clone(),
            created_at,
            summary: summary.to_owned(),
            phase,
        })
    }

    pub(super) fn release_row(app: &AppName, row: AnyRow) -> Result<Release, DbError> {
        let procfile: String = row.get("procfile");
        Ok(Release {
            app: app.clone(),
            version: row.get::<i64, _>("version") as u32,
            image: row.get("image"),
            build: row.get("build_id"),
            git_sha: row.get("git_sha"),
            procfile: procfile_parse(&procfile)?,
            config: config_parse(&row.get::<String, _>("config"))?,
            state: enum_parse(row.get("state"))?,
            failure: row.get("failure"),
            created_by: parse(row.get("created_by"))?,
            created_at: row.get("created_at"),
            summary: row.get("summary"),
            phase: match row.get::<Option<String>, _>("phase") {
                Some(state) => Some(ReleasePhase { state: enum_parse(state)?, output: row.get("phase_output") }),
                None => None,
            },
        })
    }

    /// An app's releases, newest first.
    pub async fn releases(&self, app: &AppRow, limit: Option<u32>) -> Result<Vec<Release>, DbError> {
        sqlx::query("SELECT * FROM releases WHERE app_id = $1 ORDER BY version DESC LIMIT $2")
            .bind(app.id)
            .bind(limit.map_or(i64::MAX, i64::from))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Self::release_row(&app.name, row))
            .collect()
    }

    /// Moves a pending release to `state`, with the reason when it failed; `false` when
    /// the release was not pending. A release that is deployed supersedes the app's older
    /// pending ones (they never ran).
    pub async fn settle_release(
        &self,
        app: &AppName,
        version: u32,
        state: ReleaseState,
        failure: Option<&str>,
    ) -> Result<bool, DbError> {
        let mut tx = self.writer.begin().await?;
        // A release on trial fails like a pending one (its canary then ends); it is deployed
        // only once its canary passed.
        let settle = "UPDATE releases SET state = $1, failure = $2
                      WHERE (state = 'pending' OR (state = 'trial' AND $1 = 'failed'))
                        AND version = $3 AND app_id = (SELECT id FROM apps WHERE name = $4)";
        let settled = update_release(&mut *tx, settle, enum_text(&state), failure, version, app).await?;
        if settled && state == ReleaseState::Deployed {
            // Older releases still waiting to start never will.
            sqlx::query(
                "UPDATE releases SET state = 'superseded'
                 WHERE state = 'pending' AND version < $1 AND app_id = (SELECT id FROM apps WHERE name = $2)",
            )
            .bind(i64::from(version))
            .bind(app.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if settled {
            self.release_changed();
        }
        Ok(settled)
    }

    /// Wakes at each change this process makes to a release's state or release-phase
    /// output; another replica's changes are seen only by reading again.
    pub fn release_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.release_changes.subscribe()
    }

    fn release_changed(&self) {
        self.release_changes.send_modify(|changes| *changes += 1);
    }

    /// Keeps what a release's `release` command printed so far and, once it ended, how
    /// (`state`); `false` when the release no longer waits for it.
    pub async fn record_phase(
        &self,
        app: &AppName,
        version: u32,
        state: PhaseState,
        output: &str,
    ) -> Result<bool, DbError> {
        let record = "UPDATE releases SET phase = $1, phase_output = $2
                      WHERE phase = 'running' AND version = $3 AND app_id = (SELECT id FROM apps WHERE name = $4)";
        let recorded = update_release(&self.writer, record, enum_text(&state), Some(output), version, app).await?;
        if recorded {
            self.release_changed();
        }
        Ok(recorded)
    }

    /// One release of an app.
    pub async fn release(&self, app: &AppRow, version: u32) -> Result<Option<Release>, DbError> {
        let query = sqlx::query("SELECT * FROM releases WHERE app_id = $1 AND version = $2");
        self.release_of(app, query.bind(app.id).bind(i64::from(version))).await
    }

    /// The release an app runs (or is rolling out): its newest that did not fail and is
    /// not on trial.
    /// Every app's newest release (version, state, made at) and current release, and
    /// whether it has a process crashing, by app id: three queries for any number of apps.
    pub async fn release_overview(&self) -> Result<HashMap<i64, ReleaseOverview>, DbError> {
        let mut overview: HashMap<i64, ReleaseOverview> = HashMap::new();
        let newest = sqlx::query(
            "SELECT r.app_id, r.version, r.state, r.created_at FROM releases r
             JOIN (SELECT app_id, MAX(version) AS newest FROM releases GROUP BY app_id) m
               ON m.app_id = r.app_id AND m.newest = r.version",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in newest {
            let entry = overview.entry(row.get(0)).or_default();
            let version = u32::try_from(row.get::<i64, _>(1)).map_err(|e| DbError::Corrupt(e.to_string()))?;
            entry.newest = Some((version, enum_parse(row.get(2))?, row.get(3)));
        }
        let current = sqlx::query(
            "SELECT app_id, MAX(version) FROM releases WHERE state NOT IN ('failed', 'trial') GROUP BY app_id",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in current {
            overview.entry(row.get(0)).or_default().current = u32::try_from(row.get::<i64, _>(1)).ok();
        }
        for row in sqlx::query("SELECT app_id, release_version FROM crashes").fetch_all(&self.pool).await? {
            let entry = overview.entry(row.get(0)).or_default();
            entry.crashing |= u32::try_from(row.get::<i64, _>(1)).ok() == entry.current;
        }
        Ok(overview)
    }

    pub async fn running_release(&self, app: &AppRow) -> Result<Option<Release>, DbError> {
        let query = sqlx::query(
            "SELECT * FROM releases WHERE app_id = $1 AND state NOT IN ('failed', 'trial') ORDER BY version DESC LIMIT 1",
        );
        self.release_of(app, query.bind(app.id)).await
    }

    async fn release_of(
        &self,
        app: &AppRow,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<Option<Release>, DbError> {
        query.fetch_optional(&self.pool).await?.map(|row| Self::release_row(&app.name, row)).transpose()
    }

    /// An app's current config.
    pub async fn config(&self, app: &AppRow) -> Result<BTreeMap<String, String>, DbError> {
        let text: String =
            sqlx::query("SELECT config FROM apps WHERE id = $1").bind(app.id).fetch_one(&self.pool).await?.get(0);
        config_parse(&text)
    }

    /// Every app's id with the release it should run: its newest that did not fail, is not
    /// on trial, and whose `release` command (if it has one) succeeded.
    pub async fn current_releases_by_app(&self) -> Result<Vec<(i64, Release)>, DbError> {
        self.releases_by_app(
            "SELECT a.id AS app_id, a.name AS app_name, r.* FROM releases r JOIN apps a ON a.id = r.app_id
             WHERE r.version = (SELECT MAX(version) FROM releases
                                WHERE app_id = r.app_id AND state NOT IN ('failed', 'trial')
                                  AND (phase IS NULL OR phase = 'succeeded'))
             ORDER BY a.name",
        )
        .await
    }

    /// Every app's id with its newest release, when that one (pending, or on trial) waits
    /// for its `release` command.
    pub async fn releases_awaiting_phase(&self) -> Result<Vec<(i64, Release)>, DbError> {
        self.releases_by_app(
            "SELECT a.id AS app_id, a.name AS app_name, r.* FROM releases r JOIN apps a ON a.id = r.app_id
             WHERE r.state IN ('pending', 'trial') AND r.phase = 'running'
               AND r.version = (SELECT MAX(version) FROM releases WHERE app_id = r.app_id AND state <> 'failed')
             ORDER BY a.name",
        )
        .await
    }

    async fn releases_by_app(&self, query: &'static str) -> Result<Vec<(i64, Release)>, DbError> {
        let rows = sqlx::query(query).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                let app: AppName = parse(row.get("app_name"))?;
                let id: i64 = row.get("app_id");
                Ok((id, Self::release_row(&app, row)?))
            })
            .collect()
    }
}

/// Runs `sql`, an UPDATE of one release that binds `first` and `second` as `$1` and `$2`,
/// the version as `$3` and the app's name as `$4`; whether it changed the release.
async fn update_release<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    sql: &'static str,
    first: String,
    second: Option<&str>,
    version: u32,
    app: &AppName,
) -> Result<bool, DbError> {
    let query = sqlx::query(sql).bind(first).bind(second).bind(i64::from(version)).bind(app.as_str());
    Ok(query.execute(executor).await?.rows_affected() > 0)
}
