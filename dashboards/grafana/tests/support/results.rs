//! A query's result (ClickHouse's JSONCompact) with typed access by column name.

use gatelog_model::UnixMillis;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub types: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// From a JSONCompact document (or its `meta` and `data`).
    pub fn from_json(v: &Value) -> Result<Table, String> {
        let meta = v.get("meta").and_then(Value::as_array).ok_or("no meta")?;
        let columns = meta.iter().map(|m| m["name"].as_str().unwrap_or_default().to_owned()).collect();
        let types = meta.iter().map(|m| m["type"].as_str().unwrap_or_default().to_owned()).collect();
        let rows = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or("no data")?
            .iter()
            .map(|r| r.as_array().cloned().unwrap_or_default())
            .collect();
        Ok(Table { columns, types, rows })
    }

    fn at(&self, row: usize, name: &str) -> &Value {
        let col = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns));
        &self.rows[row][col]
    }

    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }

    /// A number column (64-bit integers come quoted) as f64.
    pub fn num(&self, row: usize, name: &str) -> f64 {
        match self.at(row, name) {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{name}: {s:?} is not a number")),
            other => panic!("{name}: {other} is not a number"),
        }
    }

    pub fn u64(&self, row: usize, name: &str) -> u64 {
        match self.at(row, name) {
            Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("{name}: {n} is not a u64")),
            Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{name}: {s:?} is not a u64")),
            other => panic!("{name}: {other} is not a number"),
        }
    }

    pub fn i64(&self, row: usize, name: &str) -> i64 {
        match self.at(row, name) {
            Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("{name}: {n} is not an i64")),
            Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{name}: {s:?} is not an i64")),
            other => panic!("{name}: {other} is not a number"),
        }
    }

    pub fn str(&self, row: usize, name: &str) -> String {
        match self.at(row, name) {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// A DateTime or DateTime64 column (printed in UTC) as Unix milliseconds.
    pub fn time_ms(&self, row: usize, name: &str) -> i64 {
        let text = self.str(row, name);
        parse_time(&text).unwrap_or_else(|| panic!("{name}: {text:?} is not a time"))
    }

    /// The rows as text, times cut to whole seconds (18.16 has no milliseconds) and numbers
    /// as numbers, for comparing one server's answer with another's.
    pub fn normalized(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&self.types)
                    .map(|(v, ty)| {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        if ty.contains("DateTime") {
                            parse_time(&text).map_or(text, |ms| ms.div_euclid(1000).to_string())
                        } else if ty.contains("Int") || ty.contains("Float") || ty.contains("Decimal") {
                            text.parse::<f64>().map_or(text, |n| n.to_string())
                        } else {
                            text
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// `YYYY-MM-DD hh:mm:ss[.fff]` (UTC) as Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let rfc3339 = format!("{}Z", text.replacen(' ', "T", 1));
    UnixMillis::parse_str(&rfc3339).ok().map(|t| t.0)
}
