//! The [`ProviderStorage`] implementation on PostgreSQL: provider accounts, sessions, tokens,
//! shares, break-glass grants and the access log.

use crate::storage::some_row;
use chrono::{DateTime, Utc};
use heeldiary_core::{EntryState, Stored};
use tokio_postgres::types::Json;
use tokio_postgres::{IsolationLevel, Row};
use uuid::Uuid;

use super::faults::{retrying, Fault};
use super::PostgresStorage;
use crate::secrets::SecretHash;
use crate::storage::providers::{
    reader_name, Access, AccessRecord, BreakGlass, NewProvider, ProviderInfo, ProviderLogin,
    ProviderPatient, ProviderStorage, ShareInfo,
};
use crate::storage::{hash_from_bytes, StorageError};

const PROVIDER_COLUMNS: &str =
    "provider_id, name, email, password_hash IS NOT NULL, created_at, disabled_at";

fn provider_info(r: &Row) -> Result<ProviderInfo, Fault> {
    Ok(ProviderInfo {
        provider_id: r.try_get(0)?,
        name: r.try_get(1)?,
        email: r.try_get(2)?,
        has_password: r.try_get(3)?,
        created_at: r.try_get(4)?,
        disabled_at: r.try_get(5)?,
    })
}

fn share_info(r: &Row) -> Result<ShareInfo, Fault> {
    Ok(ShareInfo {
        provider_id: r.try_get(0)?,
        name: r.try_get(1)?,
        since: r.try_get(2)?,
    })
}

impl ProviderStorage for PostgresStorage {
    async fn create_provider(&self, p: NewProvider) -> Result<(), StorageError> {
        let result = self
            .execute(
                "INSERT INTO providers (provider_id, name, email, share_code_hash, setup_hash,
                     setup_expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &p.provider_id,
                    &p.name,
                    &p.email,
                    &p.share_code_hash.as_bytes().as_slice(),
                    &p.setup_hash.as_bytes().as_slice(),
                    &p.setup_expires_at,
                    &p.created_at,
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(StorageError::Internal(detail)) if detail.contains("unique") => Err(
                StorageError::Conflict("a provider with this email exists already".into()),
            ),
            Err(other) => Err(other),
        }
    }

    async fn list_providers(&self) -> Result<Vec<ProviderInfo>, StorageError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {PROVIDER_COLUMNS} FROM providers ORDER BY created_at, provider_id"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(provider_info).collect::<Result<_, _>>()?)
    }

    async fn provider(&self, provider_id: Uuid) -> Result<Option<ProviderInfo>, StorageError> {
        let rows = self
            .query(
                &format!("SELECT {PROVIDER_COLUMNS} FROM providers WHERE provider_id = $1"),
                &[&provider_id],
            )
            .await?;
        Ok(rows.first().map(provider_info).transpose()?)
    }

    async fn provider_login(&self, email: String) -> Result<Option<ProviderLogin>, StorageError> {
        let rows = self
            .query(
                "SELECT provider_id, password_hash, disabled_at IS NOT NULL
                 FROM providers WHERE email = $1",
                &[&email],
            )
            .await?;
        let login = |r: &Row| -> Result<ProviderLogin, Fault> {
            Ok(ProviderLogin {
                provider_id: r.try_get(0)?,
                password_hash: r.try_get(1)?,
                disabled: r.try_get(2)?,
            })
        };
        Ok(rows.first().map(login).transpose()?)
    }

    async fn set_password(
        &self,
        setup_hash: SecretHash,
        password_hash: String,
        now: DateTime<Utc>,
    ) -> Result<Uuid, StorageError> {
        let rows = self
            .query(
                "UPDATE providers SET password_hash = $2, setup_hash = NULL,
                     setup_expires_at = NULL
                 WHERE setup_hash = $1 AND setup_expires_at > $3 AND disabled_at IS NULL
                 RETURNING provider_id",
                &[&setup_hash.as_bytes().as_slice(), &password_hash, &now],
            )
            .await?;
        let row = rows.first().ok_or(StorageError::InvalidCode)?;
        Ok(row.try_get::<_, Uuid>(0).map_err(Fault::from)?)
    }

    async fn set_share_code(
        &self,
        provider_id: Uuid,
        share_code_hash: SecretHash,
    ) -> Result<(), StorageError> {
        let changed = self
            .execute(
                "UPDATE providers SET share_code_hash = $2 WHERE provider_id = $1",
                &[&provider_id, &share_code_hash.as_bytes().as_slice()],
            )
            .await?;
        some_row(changed)?;
        Ok(())
    }

    async fn disable_provider(
        &self,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        retrying(|| {
            self.in_transaction(IsolationLevel::ReadCommitted, async |tx| {
                let changed = tx
                    .execute(
                        "UPDATE providers SET disabled_at = COALESCE(disabled_at, $2)
                         WHERE provider_id = $1",
                        &[&provider_id, &now],
                    )
                    .await?;
                if changed == 0 {
                    return Err(StorageError::NotFound.into());
                }
                tx.execute(
                    "DELETE FROM provider_sessions WHERE provider_id = $1",
                    &[&provider_id],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn create_session(
        &self,
        session_hash: SecretHash,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO provider_sessions (session_hash, provider_id, created_at, last_seen_at)
             VALUES ($1, $2, $3, $3)",
            &[&session_hash.as_bytes().as_slice(), &provider_id, &now],
        )
        .await?;
        Ok(())
    }

    async fn touch_session(
        &self,
        session_hash: SecretHash,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<Option<Uuid>, StorageError> {
        let hash = session_hash.as_bytes().as_slice();
        // A session idle too long, or of a disabled provider, is ended here.
        self.execute(
            "DELETE FROM provider_sessions s USING providers p
             WHERE s.session_hash = $1 AND p.provider_id = s.provider_id
               AND (s.last_seen_at < $2 OR p.disabled_at IS NOT NULL)",
            &[&hash, &idle_since],
        )
        .await?;
        let rows = self
            .query(
                "UPDATE provider_sessions SET last_seen_at = $2 WHERE session_hash = $1
                 RETURNING provider_id",
                &[&hash, &now],
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<_, Uuid>(0))
            .transpose()
            .map_err(Fault::from)?)
    }

    async fn end_session(&self, session_hash: SecretHash) -> Result<(), StorageError> {
        self.execute(
            "DELETE FROM provider_sessions WHERE session_hash = $1",
            &[&session_hash.as_bytes().as_slice()],
        )
        .await?;
        Ok(())
    }

    async fn create_provider_token(
        &self,
        token_id: Uuid,
        provider_id: Uuid,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let inserted = self
            .execute(
                "INSERT INTO provider_tokens (token_id, provider_id, token_hash, created_at)
                 SELECT $1, provider_id, $3, $4 FROM providers WHERE provider_id = $2",
                &[
                    &token_id,
                    &provider_id,
                    &token_hash.as_bytes().as_slice(),
                    &now,
                ],
            )
            .await?;
        some_row(inserted)?;
        Ok(())
    }

    async fn provider_token(
        &self,
        token_id: Uuid,
    ) -> Result<Option<(Uuid, SecretHash)>, StorageError> {
        let rows = self
            .query(
                "SELECT t.provider_id, t.token_hash
                 FROM provider_tokens t JOIN providers p USING (provider_id)
                 WHERE t.token_id = $1 AND t.revoked_at IS NULL AND p.disabled_at IS NULL",
                &[&token_id],
            )
            .await?;
        let token = |r: &Row| -> Result<(Uuid, SecretHash), Fault> {
            Ok((r.try_get(0)?, hash_from_bytes(r.try_get(1)?)?))
        };
        Ok(rows.first().map(token).transpose()?)
    }

    async fn revoke_provider_token(
        &self,
        token_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let changed = self
            .execute(
                "UPDATE provider_tokens SET revoked_at = COALESCE(revoked_at, $2)
                 WHERE token_id = $1",
                &[&token_id, &now],
            )
            .await?;
        some_row(changed)?;
        Ok(())
    }

    async fn share(
        &self,
        patient_id: Uuid,
        share_code_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<ShareInfo, StorageError> {
        let code = share_code_hash.as_bytes().as_slice();
        // Inserted only when both the patient and an enabled provider with the code exist; a
        // repeat keeps the first time and returns it.
        let rows = self
            .query(
                "WITH target AS (
                     SELECT pa.patient_id, pr.provider_id, pr.name
                     FROM patients pa, providers pr
                     WHERE pa.patient_id = $1 AND pr.share_code_hash = $2
                       AND pr.disabled_at IS NULL
                 ), added AS (
                     INSERT INTO shares (patient_id, provider_id, shared_at)
                     SELECT patient_id, provider_id, $3 FROM target
                     ON CONFLICT (patient_id, provider_id) DO NOTHING
                     RETURNING shared_at
                 )
                 SELECT t.provider_id, t.name,
                        COALESCE((SELECT shared_at FROM added),
                                 (SELECT s.shared_at FROM shares s
                                  WHERE s.patient_id = t.patient_id
                                    AND s.provider_id = t.provider_id))
                 FROM target t",
                &[&patient_id, &code, &now],
            )
            .await?;
        let row = rows.first().ok_or(StorageError::NotFound)?;
        Ok(share_info(row)?)
    }

    async fn unshare(&self, patient_id: Uuid, provider_id: Uuid) -> Result<(), StorageError> {
        let changed = self
            .execute(
                "DELETE FROM shares WHERE patient_id = $1 AND provider_id = $2",
                &[&patient_id, &provider_id],
            )
            .await?;
        some_row(changed)?;
        Ok(())
    }

    async fn shares(&self, patient_id: Uuid) -> Result<Vec<ShareInfo>, StorageError> {
        let rows = self
            .query(
                "SELECT s.provider_id, p.name, s.shared_at
                 FROM shares s JOIN providers p USING (provider_id)
                 WHERE s.patient_id = $1 ORDER BY s.shared_at, s.provider_id",
                &[&patient_id],
            )
            .await?;
        Ok(rows.iter().map(share_info).collect::<Result<_, _>>()?)
    }

    async fn grant_break_glass(&self, grant: BreakGlass) -> Result<(), StorageError> {
        let inserted = self
            .execute(
                "INSERT INTO break_glass (patient_id, provider_id, reason, starts_at, ends_at)
                 SELECT pa.patient_id, pr.provider_id, $3, $4, $5
                 FROM patients pa, providers pr
                 WHERE pa.patient_id = $1 AND pr.provider_id = $2",
                &[
                    &grant.patient_id,
                    &grant.provider_id,
                    &grant.reason,
                    &grant.starts_at,
                    &grant.ends_at,
                ],
            )
            .await?;
        some_row(inserted)?;
        Ok(())
    }

    async fn access(
        &self,
        provider_id: Uuid,
        patient_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Access>, StorageError> {
        let rows = self
            .query(
                "SELECT
                     EXISTS (SELECT 1 FROM shares WHERE patient_id = $2 AND provider_id = $1),
                     EXISTS (SELECT 1 FROM break_glass
                             WHERE patient_id = $2 AND provider_id = $1
                               AND starts_at <= $3 AND ends_at > $3)
                 FROM providers WHERE provider_id = $1 AND disabled_at IS NULL",
                &[&provider_id, &patient_id, &now],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let (shared, glass): (bool, bool) = (
            row.try_get(0).map_err(Fault::from)?,
            row.try_get(1).map_err(Fault::from)?,
        );
        Ok(match (shared, glass) {
            (true, _) => Some(Access::Share),
            (false, true) => Some(Access::BreakGlass),
            _ => None,
        })
    }

    async fn provider_patients(
        &self,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<ProviderPatient>, StorageError> {
        let rows = self
            .query(
                "SELECT pa.patient_id, pa.label, bool_and(g.break_glass)
                 FROM (SELECT patient_id, false AS break_glass FROM shares WHERE provider_id = $1
                       UNION ALL
                       SELECT patient_id, true FROM break_glass
                       WHERE provider_id = $1 AND starts_at <= $2 AND ends_at > $2) g
                 JOIN patients pa USING (patient_id)
                 JOIN providers pr ON pr.provider_id = $1 AND pr.disabled_at IS NULL
                 GROUP BY pa.patient_id, pa.label
                 ORDER BY pa.patient_id",
                &[&provider_id, &now],
            )
            .await?;
        let patient = |r: &Row| -> Result<ProviderPatient, Fault> {
            let break_glass: bool = r.try_get(2)?;
            Ok(ProviderPatient {
                patient_id: r.try_get(0)?,
                label: r.try_get(1)?,
                access: if break_glass {
                    Access::BreakGlass
                } else {
                    Access::Share
                },
            })
        };
        Ok(rows.iter().map(patient).collect::<Result<_, _>>()?)
    }

    async fn patient_entries(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<(Uuid, EntryState)>, StorageError> {
        let rows = self
            .query(
                "SELECT entry_id, state FROM entries WHERE patient_id = $1
                 ORDER BY day, entry_id",
                &[&patient_id],
            )
            .await?;
        let entry = |r: &Row| -> Result<(Uuid, EntryState), Fault> {
            let Json(Stored(state)): Json<Stored<EntryState>> = r.try_get(1)?;
            Ok((r.try_get(0)?, state))
        };
        Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
    }

    async fn record_access(&self, record: AccessRecord) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO access_log (patient_id, log_id, provider_id, what, at, address,
                 break_glass)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &record.patient_id,
                &Uuid::now_v7(),
                &record.provider_id,
                &record.what,
                &record.at,
                &record.address,
                &record.break_glass,
            ],
        )
        .await?;
        Ok(())
    }

    async fn access_log(&self, patient_id: Uuid) -> Result<Vec<AccessRecord>, StorageError> {
        let rows = self
            .query(
                // An export by an analyst is logged under the analyst's id.
                "SELECT l.provider_id, COALESCE(p.name, a.name), l.what, l.at, l.address,
                        l.break_glass
                 FROM access_log l LEFT JOIN providers p USING (provider_id)
                 LEFT JOIN analysts a ON a.analyst_id = l.provider_id
                 WHERE l.patient_id = $1 ORDER BY l.log_id",
                &[&patient_id],
            )
            .await?;
        let record = |r: &Row| -> Result<AccessRecord, Fault> {
            let name: Option<String> = r.try_get(1)?;
            let provider_id: Uuid = r.try_get(0)?;
            Ok(AccessRecord {
                patient_id,
                provider_id,
                provider_name: reader_name(provider_id, name),
                what: r.try_get(2)?,
                at: r.try_get(3)?,
                address: r.try_get(4)?,
                break_glass: r.try_get(5)?,
            })
        };
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::ScratchSchema;
    use super::*;
    use crate::storage::{NewPatient, PoolOptions, Storage};

    #[tokio::test]
    async fn the_database_refuses_to_change_the_access_log() {
        let Some(schema) = ScratchSchema::create("access_log_append_only").await else {
            return;
        };
        let s = schema.open(&PoolOptions::default()).await;
        let patient_id = Uuid::now_v7();
        s.create_patient(NewPatient {
            patient_id,
            label: None,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
        s.record_access(AccessRecord {
            patient_id,
            provider_id: Uuid::now_v7(),
            provider_name: String::new(),
            what: "page".into(),
            at: Utc::now(),
            address: None,
            break_glass: false,
        })
        .await
        .unwrap();
        let changed = s
            .execute("UPDATE access_log SET what = 'nothing'", &[])
            .await;
        assert!(
            matches!(&changed, Err(StorageError::Internal(m)) if m.contains("append-only")),
            "{changed:?}"
        );
        assert_eq!(s.access_log(patient_id).await.unwrap()[0].what, "page");
    }
}
