//! PostgreSQL values to and from JSON, the common currency of `db_query` results and params.

use std::error::Error;

use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::{Map, Value};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::Row;

use crate::error::{HostError, HostResult};

type BoxErr = Box<dyn Error + Sync + Send>;

/// A column value decoded by its type.
pub struct Val(pub Value);

impl<'a> FromSql<'a> for Val {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxErr> {
        let v = match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
            Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
            Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
            Type::OID => Value::from(u32::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::from(f32::from_sql(ty, raw)? as f64),
            Type::FLOAT8 => Value::from(f64::from_sql(ty, raw)?),
            Type::NUMERIC => numeric(raw)?,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR => {
                Value::String(String::from_utf8_lossy(raw).into_owned())
            }
            Type::JSON | Type::JSONB => Value::from_sql(ty, raw)?,
            Type::TIMESTAMPTZ => Value::String(
                DateTime::<Utc>::from_sql(ty, raw)?
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
            Type::TIMESTAMP => Value::String(
                NaiveDateTime::from_sql(ty, raw)?
                    .format("%Y-%m-%dT%H:%M:%S%.f")
                    .to_string(),
            ),
            Type::DATE => Value::String(NaiveDate::from_sql(ty, raw)?.to_string()),
            Type::TIME => Value::String(NaiveTime::from_sql(ty, raw)?.to_string()),
            Type::UUID if raw.len() == 16 => {
                let h = hex::encode(raw);
                Value::String(format!(
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ))
            }
            Type::BYTEA => Value::String(format!("\\x{}", hex::encode(raw))),
            Type::INTERVAL if raw.len() == 16 => {
                let micros = i64::from_be_bytes(raw[0..8].try_into()?);
                let days = i32::from_be_bytes(raw[8..12].try_into()?);
                let months = i32::from_be_bytes(raw[12..16].try_into()?);
                // Seconds, with a month taken as 30 days as PostgreSQL's own EXTRACT(epoch) does.
                Value::from(
                    micros as f64 / 1e6 + days as f64 * 86400.0 + months as f64 * 30.0 * 86400.0,
                )
            }
            Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::NAME_ARRAY => {
                Value::from(Vec::<String>::from_sql(ty, raw)?)
            }
            Type::INT4_ARRAY => Value::from(Vec::<i32>::from_sql(ty, raw)?),
            Type::INT8_ARRAY => Value::from(Vec::<i64>::from_sql(ty, raw)?),
            _ => {
                return Err(format!(
                    "db_query cannot decode PostgreSQL type {}: cast it in SQL (e.g. col::text)",
                    ty.name()
                )
                .into())
            }
        };
        Ok(Val(v))
    }
    fn from_sql_null(_: &Type) -> Result<Self, BoxErr> {
        Ok(Val(Value::Null))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Binary NUMERIC → an integer when it is one and fits, else a float.
fn numeric(raw: &[u8]) -> Result<Value, BoxErr> {
    if raw.len() < 8 {
        return Err("numeric: short value".into());
    }
    let ndigits = u16::from_be_bytes([raw[0], raw[1]]) as usize;
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let dscale = u16::from_be_bytes([raw[6], raw[7]]);
    if sign == 0xC000 {
        return Ok(Value::Null); // NaN has no JSON form
    }
    if raw.len() < 8 + ndigits * 2 {
        return Err("numeric: short value".into());
    }
    let digits: Vec<i64> = (0..ndigits)
        .map(|i| u16::from_be_bytes([raw[8 + i * 2], raw[9 + i * 2]]) as i64)
        .collect();
    let neg = sign == 0x4000;
    let is_int = dscale == 0 && (ndigits as i32) <= weight + 1;
    if is_int && weight < 4 {
        let mut v: i128 = 0;
        for (i, d) in digits.iter().enumerate() {
            let _ = i;
            v = v * 10000 + *d as i128;
        }
        for _ in 0..(weight + 1 - ndigits as i32) {
            v *= 10000;
        }
        let v = if neg { -v } else { v };
        if let Ok(x) = i64::try_from(v) {
            return Ok(Value::from(x));
        }
    }
    let mut f = 0f64;
    for (i, d) in digits.iter().enumerate() {
        f += *d as f64 * 10000f64.powi(weight - i as i32);
    }
    Ok(Value::from(if neg { -f } else { f }))
}

/// One row as a JSON object, column name → value.
pub fn row_to_json(row: &Row) -> HostResult<Map<String, Value>> {
    let mut m = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let v: Val = row.try_get(i).map_err(|e| {
            HostError::invalid(format!(
                "column {:?}: {}",
                col.name(),
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string())
            ))
        })?;
        m.insert(col.name().to_string(), v.0);
    }
    Ok(m)
}

/// A parameter converted to whatever type the server inferred for its placeholder.
#[derive(Debug)]
pub struct Param(pub Value);

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
        let v = &self.0;
        if v.is_null() {
            return Ok(IsNull::Yes);
        }
        let bad = || -> BoxErr {
            format!(
                "cannot send {v} as PostgreSQL type {}: cast the placeholder in SQL (e.g. $1::text::{})",
                ty.name(),
                ty.name()
            )
            .into()
        };
        match *ty {
            Type::BOOL => v.as_bool().ok_or_else(bad)?.to_sql(ty, out),
            Type::INT2 => i16::try_from(as_i64(v).ok_or_else(bad)?)?.to_sql(ty, out),
            Type::INT4 => i32::try_from(as_i64(v).ok_or_else(bad)?)?.to_sql(ty, out),
            Type::INT8 => as_i64(v).ok_or_else(bad)?.to_sql(ty, out),
            Type::OID => u32::try_from(as_i64(v).ok_or_else(bad)?)?.to_sql(ty, out),
            Type::FLOAT4 => (as_f64(v).ok_or_else(bad)? as f32).to_sql(ty, out),
            Type::FLOAT8 => as_f64(v).ok_or_else(bad)?.to_sql(ty, out),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => match v {
                Value::String(s) => s.as_str().to_sql(ty, out),
                other => other.to_string().as_str().to_sql(ty, out),
            },
            Type::JSON | Type::JSONB => match v {
                Value::String(s) => serde_json::from_str::<Value>(s)
                    .unwrap_or(v.clone())
                    .to_sql(ty, out),
                other => other.to_sql(ty, out),
            },
            Type::TIMESTAMPTZ => {
                let s = v.as_str().ok_or_else(bad)?;
                DateTime::parse_from_rfc3339(s)
                    .map_err(|_| bad())?
                    .with_timezone(&Utc)
                    .to_sql(ty, out)
            }
            Type::TIMESTAMP => {
                let s = v.as_str().ok_or_else(bad)?;
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                    .map_err(|_| bad())?
                    .to_sql(ty, out)
            }
            Type::DATE => NaiveDate::parse_from_str(v.as_str().ok_or_else(bad)?, "%Y-%m-%d")
                .map_err(|_| bad())?
                .to_sql(ty, out),
            _ => Err(bad()),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
