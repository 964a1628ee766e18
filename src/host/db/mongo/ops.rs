//! The everyday functions: stats, count, find, delete_many, compact and raw commands.

use mongodb::bson::{doc, Document};
use rhai::{Array, Dynamic, Map};
use serde::Deserialize;

use super::conn::{connect, map_err, Conn};
use super::convert::{bson_to_dynamic, doc_to_map, Mode};
use super::dump::list_collections;
use crate::error::{HostError, HostResult};

pub async fn stats(url: &str) -> HostResult<Map> {
    let c = connect(url, None).await?;
    let db_name = c.db.name().to_string();
    let dbstats = command(&c, doc! { "dbStats": 1 }, "dbStats").await?;
    let mut colls = Array::new();
    for info in list_collections(&c.db, &c.shown).await? {
        if info.kind == "view" {
            continue;
        }
        let s = command(&c, doc! { "collStats": &info.name }, "collStats").await?;
        let num = |k: &str| {
            s.get(k)
                .map(|v| bson_to_dynamic(v, Mode::Relaxed))
                .unwrap_or(Dynamic::from_int(0))
        };
        let mut m = Map::new();
        m.insert("name".into(), info.name.clone().into());
        m.insert("count".into(), num("count"));
        m.insert("size".into(), num("size"));
        m.insert("storage_size".into(), num("storageSize"));
        m.insert("total_index_size".into(), num("totalIndexSize"));
        m.insert("avg_obj_size".into(), num("avgObjSize"));
        m.insert(
            "index_sizes".into(),
            s.get_document("indexSizes")
                .map(|d| Dynamic::from_map(doc_to_map(d, Mode::Relaxed)))
                .unwrap_or_else(|_| Dynamic::from_map(Map::new())),
        );
        colls.push(Dynamic::from_map(m));
    }
    let mut out = doc_to_map(&dbstats, Mode::Relaxed);
    out.insert("database".into(), db_name.into());
    out.insert("collections_detail".into(), Dynamic::from_array(colls));
    Ok(out)
}

async fn command(c: &Conn, cmd: Document, what: &str) -> HostResult<Document> {
    c.db.run_command(cmd)
        .await
        .map_err(|e| map_err(e, &format!("{what} on {}", c.db.name()), &c.shown))
}

pub async fn count(url: &str, coll: &str, filter: Document) -> HostResult<i64> {
    let c = connect(url, None).await?;
    let n =
        c.db.collection::<Document>(coll)
            .count_documents(filter)
            .await
            .map_err(|e| map_err(e, &format!("counting {}.{coll}", c.db.name()), &c.shown))?;
    Ok(n as i64)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FindOptions {
    /// At most this many documents (default 100). `mongo_find` returns an array, so it is bounded.
    pub limit: Option<i64>,
    pub skip: Option<u64>,
    #[serde(skip)]
    pub sort: Option<Document>,
    #[serde(skip)]
    pub projection: Option<Document>,
}

pub const MAX_FIND: i64 = 100_000;

pub async fn find(url: &str, coll: &str, filter: Document, o: FindOptions) -> HostResult<Array> {
    let limit = o.limit.unwrap_or(100);
    if !(1..=MAX_FIND).contains(&limit) {
        return Err(HostError::invalid(format!(
            "limit must be between 1 and {MAX_FIND} (got {limit}); page with `skip` for more"
        )));
    }
    let c = connect(url, None).await?;
    let what = format!("finding in {}.{coll}", c.db.name());
    let target = c.db.collection::<Document>(coll);
    let mut action = target.find(filter).limit(limit);
    if let Some(s) = o.skip {
        action = action.skip(s);
    }
    if let Some(s) = o.sort {
        action = action.sort(s);
    }
    if let Some(p) = o.projection {
        action = action.projection(p);
    }
    let mut cursor = action.await.map_err(|e| map_err(e, &what, &c.shown))?;
    let mut out = Array::new();
    while cursor
        .advance()
        .await
        .map_err(|e| map_err(e, &what, &c.shown))?
    {
        let d: Document = cursor
            .deserialize_current()
            .map_err(|e| map_err(e, &what, &c.shown))?;
        out.push(Dynamic::from_map(doc_to_map(&d, Mode::Exact)));
    }
    Ok(out)
}

#[derive(Debug, serde::Serialize)]
pub struct DeleteReport {
    pub collection: String,
    pub deleted: u64,
    pub dry_run: bool,
}

pub async fn delete_many(
    url: &str,
    coll: &str,
    filter: Document,
    all: bool,
    dry_run: bool,
) -> HostResult<DeleteReport> {
    if filter.is_empty() && !all {
        return Err(HostError::invalid(format!(
            "an empty filter would delete every document of {coll}; pass #{{ all: true }} as options if that is what you want"
        )));
    }
    let c = connect(url, None).await?;
    let target = c.db.collection::<Document>(coll);
    let what = format!("deleting from {}.{coll}", c.db.name());
    let deleted = if dry_run {
        target
            .count_documents(filter)
            .await
            .map_err(|e| map_err(e, &what, &c.shown))?
    } else {
        target
            .delete_many(filter)
            .await
            .map_err(|e| map_err(e, &what, &c.shown))?
            .deleted_count
    };
    Ok(DeleteReport {
        collection: coll.to_string(),
        deleted,
        dry_run,
    })
}

pub async fn compact(url: &str, coll: &str, force: bool, dry_run: bool) -> HostResult<Map> {
    let c = connect(url, None).await?;
    if dry_run {
        // Still check the collection exists, so a dry run catches a typo.
        let names =
            c.db.list_collection_names()
                .await
                .map_err(|e| map_err(e, "listing collections", &c.shown))?;
        if !names.iter().any(|n| n == coll) {
            return Err(HostError::not_found(format!(
                "collection {coll:?} does not exist in {}",
                c.db.name()
            )));
        }
        let mut m = Map::new();
        m.insert("collection".into(), coll.into());
        m.insert("dry_run".into(), true.into());
        return Ok(m);
    }
    let mut cmd = doc! { "compact": coll };
    if force {
        cmd.insert("force", true);
    }
    let reply = command(&c, cmd, &format!("compacting {coll}")).await?;
    let mut m = doc_to_map(&reply, Mode::Relaxed);
    m.insert("collection".into(), coll.into());
    m.insert("dry_run".into(), false.into());
    Ok(m)
}

/// Commands that only read, run even in dry-run mode.
const READ_ONLY: &[&str] = &[
    "ping",
    "hello",
    "isMaster",
    "ismaster",
    "buildInfo",
    "buildinfo",
    "serverStatus",
    "dbStats",
    "collStats",
    "listCollections",
    "listIndexes",
    "listDatabases",
    "count",
    "find",
    "distinct",
    "explain",
    "connectionStatus",
    "hostInfo",
    "getParameter",
    "validate",
    "dataSize",
    "listCommands",
    "getCmdLineOpts",
    "currentOp",
    "replSetGetStatus",
    "top",
    "usersInfo",
    "rolesInfo",
    "getLog",
];

/// Commands whose name mongo_command moves to the front of the document (Rhai maps are sorted,
/// but MongoDB takes the first key as the command).
const COMMANDS: &[&str] = &[
    "aggregate",
    "applyOps",
    "buildInfo",
    "buildinfo",
    "collMod",
    "collStats",
    "compact",
    "connectionStatus",
    "convertToCapped",
    "count",
    "create",
    "createIndexes",
    "createRole",
    "createUser",
    "currentOp",
    "dataSize",
    "dbHash",
    "dbStats",
    "delete",
    "distinct",
    "drop",
    "dropAllUsersFromDatabase",
    "dropDatabase",
    "dropIndexes",
    "dropRole",
    "dropUser",
    "explain",
    "filemd5",
    "find",
    "findAndModify",
    "fsync",
    "fsyncUnlock",
    "getCmdLineOpts",
    "getLog",
    "getMore",
    "getParameter",
    "grantRolesToUser",
    "hello",
    "hostInfo",
    "insert",
    "isMaster",
    "ismaster",
    "killCursors",
    "killOp",
    "listCollections",
    "listCommands",
    "listDatabases",
    "listIndexes",
    "logRotate",
    "ping",
    "reIndex",
    "renameCollection",
    "replSetGetStatus",
    "revokeRolesFromUser",
    "rolesInfo",
    "serverStatus",
    "setParameter",
    "shutdown",
    "top",
    "update",
    "updateUser",
    "usersInfo",
    "validate",
];

/// Put the command name first.
pub fn order_command(doc: Document) -> HostResult<(String, Document)> {
    let names: Vec<&String> = doc
        .keys()
        .filter(|k| COMMANDS.contains(&k.as_str()))
        .collect();
    let name = match names.as_slice() {
        [one] => (*one).clone(),
        [] if doc.len() == 1 => doc.keys().next().cloned().unwrap_or_default(),
        [] => {
            return Err(HostError::invalid(format!(
                "cannot tell which key is the command in {{{}}}; write it as #{{\"$ordered\": [[\"myCommand\", ...], ...]}}",
                doc.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
        many => {
            return Err(HostError::invalid(format!(
                "several keys look like commands ({}); write it as #{{\"$ordered\": [[\"command\", ...], ...]}}",
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let mut out = Document::new();
    if let Some(v) = doc.get(&name) {
        out.insert(name.clone(), v.clone());
    }
    for (k, v) in doc.into_iter().filter(|(k, _)| *k != name) {
        out.insert(k, v);
    }
    Ok((name, out))
}

pub async fn run_command(
    url: &str,
    cmd: Document,
    ordered: bool,
    dry_run: bool,
) -> HostResult<Map> {
    let (name, cmd) = if ordered {
        (cmd.keys().next().cloned().unwrap_or_default(), cmd)
    } else {
        order_command(cmd)?
    };
    if name.is_empty() {
        return Err(HostError::invalid("the command document is empty"));
    }
    let c = connect(url, None).await?;
    let has_write_stage = name == "aggregate"
        && cmd
            .get_array("pipeline")
            .map(|p| {
                p.iter().any(|s| {
                    s.as_document()
                        .map(|d| d.contains_key("$out") || d.contains_key("$merge"))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false);
    let read_only = READ_ONLY.contains(&name.as_str()) || (name == "aggregate" && !has_write_stage);
    if dry_run && !read_only {
        let mut m = Map::new();
        m.insert("command".into(), name.into());
        m.insert("dry_run".into(), true.into());
        m.insert("skipped".into(), true.into());
        return Ok(m);
    }
    let reply = command(&c, cmd, &format!("command {name}")).await?;
    let mut m = doc_to_map(&reply, Mode::Relaxed);
    // A cursor reply's documents are data: keep their exact types.
    if let Ok(cur) = reply.get_document("cursor") {
        if let Ok(batch) = cur.get_array("firstBatch") {
            let mut cm = doc_to_map(cur, Mode::Relaxed);
            cm.insert(
                "firstBatch".into(),
                Dynamic::from_array(
                    batch
                        .iter()
                        .map(|b| bson_to_dynamic(b, Mode::Exact))
                        .collect(),
                ),
            );
            m.insert("cursor".into(), Dynamic::from_map(cm));
        }
    }
    if dry_run {
        m.insert("dry_run".into(), true.into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_name_goes_first() {
        let (name, d) =
            order_command(doc! { "documents": [], "insert": "c", "ordered": true }).unwrap();
        assert_eq!(name, "insert");
        assert_eq!(d.keys().next().unwrap(), "insert");
        assert!(order_command(doc! { "a": 1, "b": 2 }).is_err());
        assert_eq!(order_command(doc! { "myCustom": 1 }).unwrap().0, "myCustom");
    }
}
