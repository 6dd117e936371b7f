//! What runs: scale and restart generations per process type, per-process settings, and crashes.

use super::*;

impl Db {
    /// An app's per-process settings of one kind.
    pub async fn settings<T: DeserializeOwned>(
        &self,
        app_id: i64,
        kind: SettingsKind,
    ) -> Result<BTreeMap<ProcessType, T>, DbError> {
        let sql = match kind {
            SettingsKind::Limits => "SELECT limits FROM apps WHERE id = $1",
            SettingsKind::Healthchecks => "SELECT healthchecks FROM apps WHERE id = $1",
        };
        let text: String = sqlx::query(sql).bind(app_id).fetch_one(&self.pool).await?.get(0);
        serde_json::from_str(&text).map_err(|e| DbError::Corrupt(e.to_string()))
    }

    /// Every app's per-process settings of one kind, by app id (one query, for the
    /// scheduler).
    pub async fn all_settings<T: DeserializeOwned>(
        &self,
        kind: SettingsKind,
    ) -> Result<HashMap<i64, BTreeMap<ProcessType, T>>, DbError> {
        let sql = match kind {
            SettingsKind::Limits => "SELECT id, limits FROM apps",
            SettingsKind::Healthchecks => "SELECT id, healthchecks FROM apps",
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                let text: String = row.get(1);
                let settings = serde_json::from_str(&text).map_err(|e| DbError::Corrupt(e.to_string()))?;
                Ok((row.get(0), settings))
            })
            .collect()
    }

    /// Replaces an app's per-process settings of one kind.
    pub async fn set_settings<T: Serialize>(
        &self,
        app_id: i64,
        kind: SettingsKind,
        settings: &BTreeMap<ProcessType, T>,
    ) -> Result<(), DbError> {
        let sql = match kind {
            SettingsKind::Limits => "UPDATE apps SET limits = $1 WHERE id = $2",
            SettingsKind::Healthchecks => "UPDATE apps SET healthchecks = $1 WHERE id = $2",
        };
        let text = serde_json::to_string(settings).map_err(|e| DbError::Corrupt(e.to_string()))?;
        sqlx::query(sql).bind(text).bind(app_id).execute(&self.writer).await?;
        Ok(())
    }

    /// The stored formation of an app (process types never scaled have no row).
    pub async fn formation(&self, app_id: i64) -> Result<Vec<FormationRow>, DbError> {
        sqlx::query("SELECT process, quantity, generation FROM formation WHERE app_id = $1 ORDER BY process")
            .bind(app_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Self::formation_row(&row))
            .collect()
    }

    /// Every app's formation, by app id (one query, for the scheduler).
    pub async fn formations(&self) -> Result<HashMap<i64, Vec<FormationRow>>, DbError> {
        let rows = sqlx::query("SELECT process, quantity, generation, app_id FROM formation ORDER BY app_id, process")
            .fetch_all(&self.pool)
            .await?;
        let mut by_app: HashMap<i64, Vec<FormationRow>> = HashMap::new();
        for row in rows {
            by_app.entry(row.get(3)).or_default().push(Self::formation_row(&row)?);
        }
        Ok(by_app)
    }

    fn formation_row(row: &AnyRow) -> Result<FormationRow, DbError> {
        Ok(FormationRow {
            process: parse(row.get(0))?,
            quantity: row.get::<i64, _>(1) as u32,
            generation: row.get::<i64, _>(2) as u32,
        })
    }

    /// Sets how many containers of a process type run.
    pub async fn scale(&self, app: &AppRow, process: &ProcessType, quantity: u32) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO formation (app_id, process, quantity) VALUES ($1, $2, $3)
             ON CONFLICT (app_id, process) DO UPDATE SET quantity = excluded.quantity",
        )
        .bind(app.id)
        .bind(process.as_str())
        .bind(i64::from(quantity))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Bumps the generation of `processes` (with `default_quantity` for types never
    /// scaled), so their containers are replaced.
    pub async fn restart(&self, app: &AppRow, processes: &[(ProcessType, u32)]) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        for (process, default_quantity) in processes {
            sqlx::query(
                "INSERT INTO formation (app_id, process, quantity, generation) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (app_id, process) DO UPDATE SET generation = formation.generation + 1",
            )
            .bind(app.id)
            .bind(process.as_str())
            .bind(i64::from(*default_quantity))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the latest crash of an app's process type, of `release`: why, how many in a
    /// row, and that it starts again `restart_in` from now.
    pub async fn record_crash(
        &self,
        app: &AppName,
        process: &str,
        release: u32,
        reason: &str,
        in_a_row: u32,
        restart_in: std::time::Duration,
    ) -> Result<(), DbError> {
        let crashed_at = time::OffsetDateTime::now_utc();
        sqlx::query(
            "INSERT INTO crashes (app_id, process, release_version, reason, in_a_row, crashed_at, restart_at)
             SELECT id, $2, $3, $4, $5, $6, $7 FROM apps WHERE name = $1
             ON CONFLICT (app_id, process) DO UPDATE SET release_version = excluded.release_version,
               reason = excluded.reason, in_a_row = excluded.in_a_row, crashed_at = excluded.crashed_at,
               restart_at = excluded.restart_at",
        )
        .bind(app.as_str())
        .bind(process)
        .bind(i64::from(release))
        .bind(reason)
        .bind(i64::from(in_a_row))
        .bind(rfc3339(crashed_at))
        .bind(rfc3339(crashed_at + restart_in))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Forgets the crashes of an app's process type (one of its containers is up).
    pub async fn clear_crash(&self, app: &AppName, process: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM crashes WHERE process = $1 AND app_id = (SELECT id FROM apps WHERE name = $2)")
            .bind(process)
            .bind(app.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The latest crash of each of an app's process types that back off: the type, the
    /// release whose container crashed, and the crash.
    pub async fn crashes(&self, app: &AppRow) -> Result<Vec<(String, u32, CrashReport)>, DbError> {
        let rows = sqlx::query(
            "SELECT process, release_version, reason, in_a_row, crashed_at, restart_at FROM crashes WHERE app_id = $1
             ORDER BY process",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?;
        let number =
            |row: &AnyRow, at: usize| u32::try_from(row.get::<i64, _>(at)).map_err(|e| DbError::Corrupt(e.to_string()));
        rows.into_iter()
            .map(|row| {
                let crash = CrashReport {
                    reason: row.get(2),
                    in_a_row: number(&row, 3)?,
                    crashed_at: row.get(4),
                    restart_at: row.get(5),
                };
                Ok((row.get(0), number(&row, 1)?, crash))
            })
            .collect()
    }
}
