//! Sends encoded frames of one `INSERT`, LZ4-compressing each on a blocking thread while the
//! next frame is encoded, so compression overlaps encoding and the other tables' inserts.

use crate::StoreError;
use bytes::Bytes;
use clickhouse::Compression;
use clickhouse::insert_formatted::{CompressedData, InsertFormatted};
use tokio::task::JoinHandle;

/// Uncompressed bytes per frame (each frame is one LZ4 block on the wire). 18.16 reads
/// compressed blocks of up to about 1 MiB best; larger frames got markedly slower.
pub(crate) const FRAME_BYTES: usize = 512 * 1024;

type Pending = JoinHandle<Result<CompressedData, clickhouse::error::Error>>;

pub(crate) struct FrameSender<'a> {
    insert: InsertFormatted,
    compress: bool,
    pending: Option<Pending>,
    table: &'a str,
}

impl<'a> FrameSender<'a> {
    pub(crate) fn new(insert: InsertFormatted, compress: bool, table: &'a str) -> Self {
        FrameSender { insert, compress, pending: None, table }
    }

    fn err(&self, e: clickhouse::error::Error) -> StoreError {
        StoreError::from_clickhouse("INSERT", self.table, e)
    }

    /// Sends the frame compressed before this one (if any) and starts compressing `frame`.
    pub(crate) async fn push(&mut self, frame: Bytes) -> Result<(), StoreError> {
        if !self.compress {
            return self.insert.send(frame).await.map_err(|e| self.err(e));
        }
        self.flush_pending().await?;
        self.pending = Some(tokio::task::spawn_blocking(move || CompressedData::new(&frame, Compression::Lz4)));
        Ok(())
    }

    async fn flush_pending(&mut self) -> Result<(), StoreError> {
        if let Some(handle) = self.pending.take() {
            let compressed = handle
                .await
                .map_err(|e| {
                    StoreError::from_clickhouse("INSERT", self.table, clickhouse::error::Error::Other(Box::new(e)))
                })?
                .map_err(|e| self.err(e))?;
            self.insert.send_compressed(compressed).await.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Sends what is left and waits for the server to accept the `INSERT`.
    pub(crate) async fn finish(mut self) -> Result<(), StoreError> {
        self.flush_pending().await?;
        let table = self.table;
        self.insert.end().await.map_err(|e| StoreError::from_clickhouse("INSERT", table, e))
    }
}
