//! The ceiling for benches/mongo.sh: a bare driver cursor scan of one collection with the same
//! driver and batch size dump_db uses, touching each document's bytes and nothing else.
//!
//! cargo run --release --example mongo_scan -- mongodb://127.0.0.1:27017/bench docs 1000

use mongodb::bson::{doc, RawDocumentBuf};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (url, coll) = match (args.get(1), args.get(2)) {
        (Some(u), Some(c)) => (u.clone(), c.clone()),
        _ => return Err("usage: mongo_scan URL COLLECTION [BATCH]".into()),
    };
    let batch: u32 = args.get(3).map(|b| b.parse()).transpose()?.unwrap_or(1000);
    let client = mongodb::Client::with_uri_str(&url).await?;
    let db = client
        .default_database()
        .ok_or("the URL names no database")?;
    let started = std::time::Instant::now();
    let mut cursor = db
        .collection::<RawDocumentBuf>(&coll)
        .find(doc! {})
        .batch_size(batch)
        .await?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while cursor.advance().await? {
        bytes += cursor.current().as_bytes().len() as u64;
        n += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{n} {bytes} {secs:.3}");
    Ok(())
}
