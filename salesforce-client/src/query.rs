//! SOQL over REST (`GET /query?q=`), page by page: Salesforce answers up to 2,000 rows and a
//! `nextRecordsUrl` for the rest. Rows deserialise into the caller's type (the `attributes`
//! member every row carries is ignored unless the type asks for it).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::http::Call;
use crate::{Client, Error};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    total_size: u64,
    done: bool,
    records: Vec<T>,
    next_records_url: Option<String>,
}

enum Next {
    Query(String),
    More(String),
    Done,
}

/// The pages of one query; each [`QueryPages::next_page`] is one API call.
pub struct QueryPages<T> {
    client: Client,
    next: Next,
    total_size: Option<u64>,
    rows: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> QueryPages<T> {
    /// The next page of rows, `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, Error> {
        let page: Page<T> = match &self.next {
            Next::Done => return Ok(None),
            Next::Query(soql) => {
                let query = [("q", soql.as_str())];
                let mut call = Call::get("/query");
                call.query = &query;
                self.client.json(&call).await?
            }
            Next::More(url) => self.client.json(&Call::get(url)).await?,
        };
        self.total_size = Some(page.total_size);
        self.next = match page.next_records_url {
            Some(url) if !page.done => Next::More(url),
            _ => Next::Done,
        };
        Ok(Some(page.records))
    }

    /// `totalSize`, once the first page has arrived.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }
}

impl Client {
    /// Runs `soql`; read the rows with [`QueryPages::next_page`].
    pub fn query<T: DeserializeOwned>(&self, soql: impl Into<String>) -> QueryPages<T> {
        QueryPages {
            client: self.clone(),
            next: Next::Query(soql.into()),
            total_size: None,
            rows: PhantomData,
        }
    }

    /// Runs `soql` and collects every page.
    pub async fn query_all<T: DeserializeOwned>(
        &self,
        soql: impl Into<String>,
    ) -> Result<Vec<T>, Error> {
        let mut pages = self.query(soql);
        let mut rows = Vec::new();
        while let Some(page) = pages.next_page().await? {
            rows.extend(page);
        }
        Ok(rows)
    }
}
