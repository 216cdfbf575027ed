//! The [`ProviderStorage`] implementation on SQLite: provider accounts, sessions, tokens, shares,
//! break-glass grants and the access log.

use crate::storage::some_row;
use chrono::{DateTime, Utc};
use heeldiary_core::EntryState;
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::transactions::{parse_state, parse_time, parse_uuid, time_text};
use super::SqliteStorage;
use crate::secrets::SecretHash;
use crate::storage::providers::{
    reader_name, Access, AccessRecord, BreakGlass, NewProvider, ProviderInfo, ProviderLogin,
    ProviderPatient, ProviderStorage, ShareInfo,
};
use crate::storage::{hash_from_bytes, StorageError};

type ProviderRow = (String, String, String, bool, String, Option<String>);

const PROVIDER_COLUMNS: &str =
    "provider_id, name, email, password_hash IS NOT NULL, created_at, disabled_at";

fn provider_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProviderRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn provider_info(row: ProviderRow) -> Result<ProviderInfo, StorageError> {
    let (provider_id, name, email, has_password, created_at, disabled_at) = row;
    Ok(ProviderInfo {
        provider_id: parse_uuid(&provider_id)?,
        name,
        email,
        has_password,
        created_at: parse_time(&created_at)?,
        disabled_at: disabled_at.as_deref().map(parse_time).transpose()?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    )
}

impl ProviderStorage for SqliteStorage {
    async fn create_provider(&self, p: NewProvider) -> Result<(), StorageError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO providers (provider_id, name, email, share_code_hash, setup_hash,
                     setup_expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    p.provider_id.to_string(),
                    p.name,
                    p.email,
                    p.share_code_hash.as_bytes().as_slice(),
                    p.setup_hash.as_bytes().as_slice(),
                    time_text(p.setup_expires_at),
                    time_text(p.created_at)
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StorageError::Conflict("a provider with this email exists already".into())
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn list_providers(&self) -> Result<Vec<ProviderInfo>, StorageError> {
        self.call(|conn| {
            let rows: Vec<ProviderRow> = conn
                .prepare_cached(&format!(
                    "SELECT {PROVIDER_COLUMNS} FROM providers ORDER BY created_at, provider_id"
                ))?
                .query_map([], provider_row)?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(provider_info).collect()
        })
        .await
    }

    async fn provider(&self, provider_id: Uuid) -> Result<Option<ProviderInfo>, StorageError> {
        self.call(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {PROVIDER_COLUMNS} FROM providers WHERE provider_id = ?1"
                ))?
                .query_row([provider_id.to_string()], provider_row)
                .optional()?;
            row.map(provider_info).transpose()
        })
        .await
    }

    async fn provider_login(&self, email: String) -> Result<Option<ProviderLogin>, StorageError> {
        self.call(move |conn| {
            let row: Option<(String, Option<String>, bool)> = conn
                .prepare_cached(
                    "SELECT provider_id, password_hash, disabled_at IS NOT NULL
                     FROM providers WHERE email = ?1",
                )?
                .query_row([email], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            row.map(|(id, password_hash, disabled)| {
                Ok(ProviderLogin {
                    provider_id: parse_uuid(&id)?,
                    password_hash,
                    disabled,
                })
            })
            .transpose()
        })
        .await
    }

    async fn set_password(
        &self,
        setup_hash: SecretHash,
        password_hash: String,
        now: DateTime<Utc>,
    ) -> Result<Uuid, StorageError> {
        self.call(move |conn| {
            let id: Option<String> = conn
                .prepare_cached(
                    "UPDATE providers SET password_hash = ?2, setup_hash = NULL,
                         setup_expires_at = NULL
                     WHERE setup_hash = ?1 AND setup_expires_at > ?3 AND disabled_at IS NULL
                     RETURNING provider_id",
                )?
                .query_row(
                    params![
                        setup_hash.as_bytes().as_slice(),
                        password_hash,
                        time_text(now)
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            parse_uuid(&id.ok_or(StorageError::InvalidCode)?)
        })
        .await
    }

    async fn set_share_code(
        &self,
        provider_id: Uuid,
        share_code_hash: SecretHash,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let changed = conn.execute(
                "UPDATE providers SET share_code_hash = ?2 WHERE provider_id = ?1",
                params![
                    provider_id.to_string(),
                    share_code_hash.as_bytes().as_slice()
                ],
            )?;
            some_row(changed)?;
            Ok(())
        })
        .await
    }

    async fn disable_provider(
        &self,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let id = provider_id.to_string();
            let changed = tx.execute(
                "UPDATE providers SET disabled_at = COALESCE(disabled_at, ?2)
                 WHERE provider_id = ?1",
                params![id, time_text(now)],
            )?;
            some_row(changed)?;
            tx.execute(
                "DELETE FROM provider_sessions WHERE provider_id = ?1",
                [&id],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_session(
        &self,
        session_hash: SecretHash,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO provider_sessions (session_hash, provider_id, created_at, last_seen_at)
                 VALUES (?1, ?2, ?3, ?3)",
                params![
                    session_hash.as_bytes().as_slice(),
                    provider_id.to_string(),
                    time_text(now)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn touch_session(
        &self,
        session_hash: SecretHash,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<Option<Uuid>, StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let hash = session_hash.as_bytes().as_slice();
            let row: Option<(String, String, bool)> = tx
                .prepare_cached(
                    "SELECT s.provider_id, s.last_seen_at, p.disabled_at IS NOT NULL
                     FROM provider_sessions s JOIN providers p USING (provider_id)
                     WHERE s.session_hash = ?1",
                )?
                .query_row([hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((provider_id, last_seen, disabled)) = row else {
                return Ok(None);
            };
            if disabled || parse_time(&last_seen)? < idle_since {
                tx.execute(
                    "DELETE FROM provider_sessions WHERE session_hash = ?1",
                    [hash],
                )?;
                tx.commit()?;
                return Ok(None);
            }
            tx.execute(
                "UPDATE provider_sessions SET last_seen_at = ?2 WHERE session_hash = ?1",
                params![hash, time_text(now)],
            )?;
            tx.commit()?;
            Ok(Some(parse_uuid(&provider_id)?))
        })
        .await
    }

    async fn end_session(&self, session_hash: SecretHash) -> Result<(), StorageError> {
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM provider_sessions WHERE session_hash = ?1",
                [session_hash.as_bytes().as_slice()],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_provider_token(
        &self,
        token_id: Uuid,
        provider_id: Uuid,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO provider_tokens (token_id, provider_id, token_hash, created_at)
                 SELECT ?1, provider_id, ?3, ?4 FROM providers WHERE provider_id = ?2",
                params![
                    token_id.to_string(),
                    provider_id.to_string(),
                    token_hash.as_bytes().as_slice(),
                    time_text(now)
                ],
            )?;
            some_row(inserted)?;
            Ok(())
        })
        .await
    }

    async fn provider_token(
        &self,
        token_id: Uuid,
    ) -> Result<Option<(Uuid, SecretHash)>, StorageError> {
        self.call(move |conn| {
            let row: Option<(String, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT t.provider_id, t.token_hash
                     FROM provider_tokens t JOIN providers p USING (provider_id)
                     WHERE t.token_id = ?1 AND t.revoked_at IS NULL AND p.disabled_at IS NULL",
                )?
                .query_row([token_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(id, hash)| Ok((parse_uuid(&id)?, hash_from_bytes(hash)?)))
                .transpose()
        })
        .await
    }

    async fn revoke_provider_token(
        &self,
        token_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let changed = conn.execute(
                "UPDATE provider_tokens SET revoked_at = COALESCE(revoked_at, ?2)
                 WHERE token_id = ?1",
                params![token_id.to_string(), time_text(now)],
            )?;
            some_row(changed)?;
            Ok(())
        })
        .await
    }

    async fn share(
        &self,
        patient_id: Uuid,
        share_code_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<ShareInfo, StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let patient = patient_id.to_string();
            let known = tx
                .prepare_cached("SELECT 1 FROM patients WHERE patient_id = ?1")?
                .exists([&patient])?;
            let provider: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT provider_id, name FROM providers
                     WHERE share_code_hash = ?1 AND disabled_at IS NULL",
                )?
                .query_row([share_code_hash.as_bytes().as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let (Some((provider_id, name)), true) = (provider, known) else {
                return Err(StorageError::NotFound);
            };
            tx.execute(
                "INSERT INTO shares (patient_id, provider_id, shared_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (patient_id, provider_id) DO NOTHING",
                params![patient, provider_id, time_text(now)],
            )?;
            let since: String = tx.query_row(
                "SELECT shared_at FROM shares WHERE patient_id = ?1 AND provider_id = ?2",
                [&patient, &provider_id],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(ShareInfo {
                provider_id: parse_uuid(&provider_id)?,
                name,
                since: parse_time(&since)?,
            })
        })
        .await
    }

    async fn unshare(&self, patient_id: Uuid, provider_id: Uuid) -> Result<(), StorageError> {
        self.call(move |conn| {
            let changed = conn.execute(
                "DELETE FROM shares WHERE patient_id = ?1 AND provider_id = ?2",
                [patient_id.to_string(), provider_id.to_string()],
            )?;
            some_row(changed)?;
            Ok(())
        })
        .await
    }

    async fn shares(&self, patient_id: Uuid) -> Result<Vec<ShareInfo>, StorageError> {
        self.call(move |conn| {
            let rows: Vec<(String, String, String)> = conn
                .prepare_cached(
                    "SELECT s.provider_id, p.name, s.shared_at
                     FROM shares s JOIN providers p USING (provider_id)
                     WHERE s.patient_id = ?1 ORDER BY s.shared_at, s.provider_id",
                )?
                .query_map([patient_id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, name, since)| {
                    Ok(ShareInfo {
                        provider_id: parse_uuid(&id)?,
                        name,
                        since: parse_time(&since)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn grant_break_glass(&self, grant: BreakGlass) -> Result<(), StorageError> {
        self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO break_glass (patient_id, provider_id, reason, starts_at, ends_at)
                 SELECT pa.patient_id, pr.provider_id, ?3, ?4, ?5
                 FROM patients pa, providers pr
                 WHERE pa.patient_id = ?1 AND pr.provider_id = ?2",
                params![
                    grant.patient_id.to_string(),
                    grant.provider_id.to_string(),
                    grant.reason,
                    time_text(grant.starts_at),
                    time_text(grant.ends_at)
                ],
            )?;
            some_row(inserted)?;
            Ok(())
        })
        .await
    }

    async fn access(
        &self,
        provider_id: Uuid,
        patient_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Access>, StorageError> {
        self.call(move |conn| {
            let row: Option<(bool, bool)> = conn
                .prepare_cached(
                    "SELECT
                         EXISTS (SELECT 1 FROM shares
                                 WHERE patient_id = ?2 AND provider_id = ?1),
                         EXISTS (SELECT 1 FROM break_glass
                                 WHERE patient_id = ?2 AND provider_id = ?1
                                   AND starts_at <= ?3 AND ends_at > ?3)
                     FROM providers WHERE provider_id = ?1 AND disabled_at IS NULL",
                )?
                .query_row(
                    params![
                        provider_id.to_string(),
                        patient_id.to_string(),
                        time_text(now)
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(match row {
                Some((true, _)) => Some(Access::Share),
                Some((false, true)) => Some(Access::BreakGlass),
                _ => None,
            })
        })
        .await
    }

    async fn provider_patients(
        &self,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<ProviderPatient>, StorageError> {
        self.call(move |conn| {
            let rows: Vec<(String, Option<String>, bool)> = conn
                .prepare_cached(
                    "SELECT pa.patient_id, pa.label, MIN(g.break_glass)
                     FROM (SELECT patient_id, 0 AS break_glass FROM shares WHERE provider_id = ?1
                           UNION ALL
                           SELECT patient_id, 1 FROM break_glass
                           WHERE provider_id = ?1 AND starts_at <= ?2 AND ends_at > ?2) g
                     JOIN patients pa USING (patient_id)
                     JOIN providers pr ON pr.provider_id = ?1 AND pr.disabled_at IS NULL
                     GROUP BY pa.patient_id, pa.label
                     ORDER BY pa.patient_id",
                )?
                .query_map(params![provider_id.to_string(), time_text(now)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, label, break_glass)| {
                    Ok(ProviderPatient {
                        patient_id: parse_uuid(&id)?,
                        label,
                        access: if break_glass {
                            Access::BreakGlass
                        } else {
                            Access::Share
                        },
                    })
                })
                .collect()
        })
        .await
    }

    async fn patient_entries(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<(Uuid, EntryState)>, StorageError> {
        self.call(move |conn| {
            let rows: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT entry_id, state FROM entries WHERE patient_id = ?1
                     ORDER BY day, entry_id",
                )?
                .query_map([patient_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, state)| Ok((parse_uuid(&id)?, parse_state(&state)?)))
                .collect()
        })
        .await
    }

    async fn record_access(&self, record: AccessRecord) -> Result<(), StorageError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO access_log (patient_id, log_id, provider_id, what, at, address,
                     break_glass)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    record.patient_id.to_string(),
                    Uuid::now_v7().to_string(),
                    record.provider_id.to_string(),
                    record.what,
                    time_text(record.at),
                    record.address,
                    record.break_glass
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn access_log(&self, patient_id: Uuid) -> Result<Vec<AccessRecord>, StorageError> {
        type LogRow = (String, Option<String>, String, String, Option<String>, bool);
        self.call(move |conn| {
            let rows: Vec<LogRow> = conn
                .prepare_cached(
                    // An export by an analyst is logged under the analyst's id.
                    "SELECT l.provider_id, COALESCE(p.name, a.name), l.what, l.at, l.address,
                            l.break_glass
                     FROM access_log l LEFT JOIN providers p USING (provider_id)
                     LEFT JOIN analysts a ON a.analyst_id = l.provider_id
                     WHERE l.patient_id = ?1 ORDER BY l.log_id",
                )?
                .query_map([patient_id.to_string()], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(provider_id, name, what, at, address, break_glass)| {
                    let provider_id = parse_uuid(&provider_id)?;
                    Ok(AccessRecord {
                        patient_id,
                        provider_id,
                        provider_name: reader_name(provider_id, name),
                        what,
                        at: parse_time(&at)?,
                        address,
                        break_glass,
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::storage::{NewPatient, Storage};

    #[tokio::test]
    async fn the_database_refuses_to_change_the_access_log() {
        let s = SqliteStorage::open_in_memory().await.unwrap();
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
            .call(|conn| Ok(conn.execute("UPDATE access_log SET what = 'nothing'", [])?))
            .await;
        assert!(
            matches!(&changed, Err(StorageError::Internal(m)) if m.contains("append-only")),
            "{changed:?}"
        );
        assert_eq!(s.access_log(patient_id).await.unwrap()[0].what, "page");
    }
}
