//! MySQL/MariaDB connections through mysql_async (queries, maintenance, export): real bind
//! parameters instead of text substitution, typed values, errors that say whether the password,
//! the host or the database was wrong.

use std::time::Duration;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, OptsBuilder, Row, SslOpts, Value as MyValue};
use serde_json::{Map, Value};

use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::db::url::ServerUrl;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to `db` (the URL's database when `None`; `Some("")` for no database).
pub async fn connect(url: &ServerUrl, db: Option<&str>) -> HostResult<Conn> {
    let db = db.unwrap_or(&url.database);
    let mut b = OptsBuilder::default()
        .user(url.user.clone())
        .pass(url.password.clone())
        .db_name((!db.is_empty()).then(|| db.to_string()))
        .prefer_socket(false)
        .stmt_cache_size(16);
    match url.query_param("socket") {
        Some(s) => b = b.socket(Some(s)),
        None => {
            b = b
                .ip_or_hostname(url.host.clone())
                .tcp_port(url.port.unwrap_or(3306))
        }
    }
    b = b.ssl_opts(ssl_opts(url)?);
    let timeout = url
        .query_param("connect_timeout")
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(CONNECT_TIMEOUT);
    match tokio::time::timeout(timeout, Conn::new(b)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(classify(url, &e)),
        Err(_) => Err(HostError::network(format!(
            "timed out connecting to MySQL/MariaDB at {}",
            url.endpoint()
        ))),
    }
}

/// `ssl-mode` as the mariadb/mysql clients spell it (DISABLED by default for queries; the
/// command-line tools used for dumps keep their own defaults).
fn ssl_opts(url: &ServerUrl) -> HostResult<Option<SslOpts>> {
    let mode = url
        .query_param("ssl-mode")
        .or_else(|| url.query_param("ssl_mode"))
        .or_else(|| url.query_param("sslmode"))
        .unwrap_or_default()
        .to_ascii_uppercase();
    let base = SslOpts::default();
    Ok(match mode.as_str() {
        "" | "DISABLED" | "DISABLE" => None,
        "REQUIRED" | "REQUIRE" => Some(
            base.with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        "VERIFY_CA" => Some(base.with_danger_skip_domain_validation(true)),
        "VERIFY_IDENTITY" | "VERIFY-FULL" => Some(base),
        other => {
            return Err(HostError::invalid(format!(
            "ssl-mode={other} is not valid (use DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY)"
        )))
        }
    })
}

/// A driver error as a host error, in words a person can act on.
pub fn classify(url: &ServerUrl, e: &mysql_async::Error) -> HostError {
    let who = url.user.clone().unwrap_or_default();
    let msg = crate::redact::redact(&e.to_string());
    match e {
        mysql_async::Error::Server(s) => match s.code {
            1045 | 1698 => HostError::new(
                ErrorKind::Auth,
                format!(
                    "authentication failed for user {who} at {}: {}",
                    url.endpoint(),
                    crate::redact::redact(&s.message)
                ),
            ),
            1049 => HostError::not_found(format!(
                "database {:?} does not exist on {}",
                url.database,
                url.endpoint()
            )),
            1044 | 1142 | 1227 => HostError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{} (MySQL error {})",
                    crate::redact::redact(&s.message),
                    s.code
                ),
            ),
            _ => HostError::server(format!(
                "{} (MySQL error {}, SQLSTATE {})",
                crate::redact::redact(&s.message),
                s.code,
                s.state
            )),
        },
        mysql_async::Error::Io(_) => HostError::network(format!(
            "cannot connect to MySQL/MariaDB at {}: {msg}",
            url.endpoint()
        )),
        _ => HostError::server(format!("MySQL/MariaDB at {}: {msg}", url.endpoint())),
    }
}

/// Script values as bind parameters.
pub fn params(values: &[Value]) -> Vec<MyValue> {
    values
        .iter()
        .map(|v| match v {
            Value::Null => MyValue::NULL,
            Value::Bool(b) => MyValue::Int(*b as i64),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => MyValue::Int(i),
                (None, Some(u)) => MyValue::UInt(u),
                _ => MyValue::Double(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => MyValue::Bytes(s.clone().into_bytes()),
            other => MyValue::Bytes(other.to_string().into_bytes()),
        })
        .collect()
}

/// Run one statement and return its rows (text protocol without parameters, so statements
/// that cannot be prepared work too).
pub async fn rows(
    url: &ServerUrl,
    c: &mut Conn,
    sql: &str,
    values: &[Value],
) -> HostResult<Vec<Map<String, Value>>> {
    let result = if values.is_empty() {
        c.query::<Row, _>(sql).await
    } else {
        c.exec::<Row, _, _>(sql, params(values)).await
    };
    let rows = result.map_err(|e| classify(url, &e))?;
    Ok(rows.into_iter().map(row_to_json).collect())
}

/// The first column of the first row as an integer (0 when there is none).
pub async fn scalar(url: &ServerUrl, c: &mut Conn, sql: &str, values: &[Value]) -> HostResult<i64> {
    Ok(rows(url, c, sql, values)
        .await?
        .first()
        .and_then(|r| r.values().next().cloned())
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0))
}

pub fn row_to_json(mut row: Row) -> Map<String, Value> {
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    names.into_iter().zip(values(&mut row)).collect()
}

/// A row's values in column order, typed.
pub fn values(row: &mut Row) -> Vec<Value> {
    let columns = row.columns();
    columns
        .iter()
        .enumerate()
        .map(|(i, col)| value_to_json(row.take::<MyValue, _>(i).unwrap_or(MyValue::NULL), col))
        .collect()
}

/// Typed JSON: integers and floats as numbers, DECIMAL as a number when it has no fraction
/// (else text, to keep its precision), JSON as maps, dates as ISO text, binary as `\x` hex
/// (the same convention as SQLite blobs).
pub fn value_to_json(v: MyValue, col: &Column) -> Value {
    use ColumnType::*;
    match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => Value::from(i),
        MyValue::UInt(u) => Value::from(u),
        MyValue::Float(f) => Value::from(f as f64),
        MyValue::Double(d) => Value::from(d),
        MyValue::Date(y, mo, d, h, mi, s, us) => {
            if col.column_type() == MYSQL_TYPE_DATE {
                Value::String(format!("{y:04}-{mo:02}-{d:02}"))
            } else if us > 0 {
                Value::String(format!(
                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
                ))
            } else {
                Value::String(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
            }
        }
        MyValue::Time(neg, days, h, mi, s, us) => {
            let hours = days * 24 + h as u32;
            let sign = if neg { "-" } else { "" };
            let frac = if us > 0 {
                format!(".{us:06}")
            } else {
                String::new()
            };
            Value::String(format!("{sign}{hours:02}:{mi:02}:{s:02}{frac}"))
        }
        MyValue::Bytes(b) => {
            let text = || String::from_utf8_lossy(&b).into_owned();
            match col.column_type() {
                MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG
                | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => {
                    let t = text();
                    t.parse::<i64>()
                        .map(Value::from)
                        .or_else(|_| t.parse::<u64>().map(Value::from))
                        .unwrap_or(Value::String(t))
                }
                MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => {
                    let t = text();
                    t.parse::<f64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(t))
                }
                MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => {
                    let t = text();
                    match t.parse::<i64>() {
                        Ok(i) if !t.contains('.') => Value::from(i),
                        _ => Value::String(t),
                    }
                }
                MYSQL_TYPE_JSON => {
                    serde_json::from_slice(&b).unwrap_or_else(|_| Value::String(text()))
                }
                MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
                | MYSQL_TYPE_BLOB
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_STRING
                | MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_BIT
                    if is_binary(col) =>
                {
                    Value::String(format!("\\x{}", hex::encode(&b)))
                }
                _ => Value::String(text()),
            }
        }
    }
}

/// Binary strings and blobs carry the `binary` character set (63).
fn is_binary(col: &Column) -> bool {
    col.character_set() == 63
        && (col.flags().contains(ColumnFlags::BINARY_FLAG)
            || col.column_type() == ColumnType::MYSQL_TYPE_BIT)
}
