//! Table writers: rows of [`Cell`]s against a list of [`Column`]s, encoded as CSV (the `csv`
//! crate), NDJSON (one JSON object per line) or Parquet (the `parquet` and `arrow` crates, typed
//! columns, written in row groups so memory stays flat).

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, Int8Builder,
    ListBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::columns::{Cell, Column, ColumnType};
use crate::ExportError;

/// Something that takes rows and writes one table.
pub trait TableWriter: Send {
    /// Writes one row; `row` has one cell per column.
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError>;
    /// Flushes everything and closes the table; returns the rows written.
    fn finish(self: Box<Self>) -> Result<u64, ExportError>;
}

/// CSV with a header line; no value is an empty field, lists are `;`-separated.
pub struct CsvTable<W: Write> {
    writer: csv::Writer<W>,
    rows: u64,
    /// The row being written, reused: the writer copies a whole record into its buffer in
    /// one step, where field by field it keeps state for each.
    record: csv::ByteRecord,
    field: String,
}

/// Bytes the CSV writer gathers before it writes to its output: as large as the buffer an
/// exported file is given, which a write of a whole buffer then skips instead of copying into.
const CSV_BUFFER: usize = 1 << 16;

fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .buffer_capacity(CSV_BUFFER)
        .from_writer(out)
}

impl<W: Write> CsvTable<W> {
    /// Starts a table on `out`, writing the header.
    pub fn new(out: W, columns: &[Column]) -> Result<Self, ExportError> {
        let mut writer = csv_writer(out);
        writer
            .write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(|e| ExportError::Csv(e.to_string()))?;
        Ok(CsvTable {
            writer,
            rows: 0,
            record: csv::ByteRecord::new(),
            field: String::new(),
        })
    }

    /// Continues a table on `out` without a header: a later chunk of a streamed table.
    pub fn continuing(out: W) -> Self {
        CsvTable {
            writer: csv_writer(out),
            rows: 0,
            record: csv::ByteRecord::new(),
            field: String::new(),
        }
    }

    /// Closes the table and hands back the output.
    pub fn into_inner(self) -> Result<W, ExportError> {
        self.writer
            .into_inner()
            .map_err(|e| ExportError::Csv(e.to_string()))
    }
}

impl<W: Write + Send> TableWriter for CsvTable<W> {
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError> {
        self.record.clear();
        for cell in row {
            match cell {
                Cell::Text(t) => self.record.push_field(t.as_bytes()),
                Cell::Word(w) => self.record.push_field(w.as_bytes()),
                Cell::Null => self.record.push_field(b""),
                Cell::Int(n) => self
                    .record
                    .push_field(itoa::Buffer::new().format(*n).as_bytes()),
                Cell::Bool(b) => self.record.push_field(if *b { b"true" } else { b"false" }),
                other => {
                    self.field.clear();
                    other.write_csv(&mut self.field);
                    self.record.push_field(self.field.as_bytes());
                }
            }
        }
        self.writer
            .write_byte_record(&self.record)
            .map_err(|e| ExportError::Csv(e.to_string()))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<u64, ExportError> {
        let rows = self.rows;
        let mut out = self.into_inner()?;
        out.flush().map_err(ExportError::io("csv"))?;
        Ok(rows)
    }
}

/// One JSON object per line, keys in column order, no value as `null`.
pub struct NdjsonTable<W: Write> {
    out: W,
    names: Vec<String>,
    rows: u64,
}

impl<W: Write> NdjsonTable<W> {
    /// Starts a table on `out`.
    pub fn new(out: W, columns: &[Column]) -> Self {
        NdjsonTable {
            out,
            names: columns.iter().map(|c| c.name.clone()).collect(),
            rows: 0,
        }
    }

    /// Closes the table and hands back the output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> TableWriter for NdjsonTable<W> {
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError> {
        // Written by hand so the keys keep the column order.
        let mut line = Vec::with_capacity(64 * row.len());
        line.push(b'{');
        for (i, (name, cell)) in self.names.iter().zip(row).enumerate() {
            if i > 0 {
                line.push(b',');
            }
            serde_json::to_writer(&mut line, name)
                .and_then(|()| {
                    line.push(b':');
                    serde_json::to_writer(&mut line, &cell.to_json())
                })
                .map_err(|e| ExportError::io("ndjson")(e.into()))?;
        }
        line.extend_from_slice(b"}\n");
        self.out
            .write_all(&line)
            .map_err(ExportError::io("ndjson"))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<u64, ExportError> {
        self.out.flush().map_err(ExportError::io("ndjson"))?;
        Ok(self.rows)
    }
}

/// Rows per Parquet row group (and per Arrow batch kept in memory).
const BATCH_ROWS: usize = 16_384;

/// The Arrow type of a column.
pub(crate) fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Int8 => DataType::Int8,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Text => DataType::Utf8,
        ColumnType::TextList => {
            DataType::List(Arc::new(ArrowField::new("item", DataType::Utf8, true)))
        }
        ColumnType::Date => DataType::Date32,
    }
}

/// The Arrow schema of a table: every column nullable.
pub(crate) fn arrow_schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| ArrowField::new(&c.name, arrow_type(c.ty), true))
            .collect::<Vec<_>>(),
    ))
}

/// Rows buffered as Arrow columns until a batch is full.
enum Builder {
    Int8(Int8Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Text(StringBuilder),
    TextList(ListBuilder<StringBuilder>),
    Date(Date32Builder),
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid day")
}

impl Builder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Int8 => Builder::Int8(Int8Builder::new()),
            ColumnType::Int32 => Builder::Int32(Int32Builder::new()),
            ColumnType::Int64 => Builder::Int64(Int64Builder::new()),
            ColumnType::Float64 => Builder::Float64(Float64Builder::new()),
            ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
            ColumnType::Text => Builder::Text(StringBuilder::new()),
            ColumnType::TextList => Builder::TextList(ListBuilder::new(StringBuilder::new())),
            ColumnType::Date => Builder::Date(Date32Builder::new()),
        }
    }

    fn push(&mut self, cell: &Cell, column: &str) -> Result<(), ExportError> {
        let mismatch = || {
            ExportError::Parquet(format!(
                "column {column}: a {cell:?} does not fit its declared type"
            ))
        };
        match (self, cell) {
            (Builder::Int8(b), Cell::Int(n)) => {
                b.append_value(i8::try_from(*n).map_err(|_| mismatch())?)
            }
            (Builder::Int32(b), Cell::Int(n)) => {
                b.append_value(i32::try_from(*n).map_err(|_| mismatch())?)
            }
            (Builder::Int64(b), Cell::Int(n)) => b.append_value(*n),
            (Builder::Float64(b), Cell::Float(x)) => b.append_value(*x),
            (Builder::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (Builder::Text(b), Cell::Text(t)) => b.append_value(t),
            (Builder::Text(b), Cell::Word(w)) => b.append_value(w),
            (Builder::TextList(b), Cell::List(words)) => {
                for word in words.iter() {
                    b.values().append_value(word);
                }
                b.append(true);
            }
            (Builder::Date(b), Cell::Date(d)) => b.append_value((*d - epoch()).num_days() as i32),
            (Builder::Int8(b), Cell::Null) => b.append_null(),
            (Builder::Int32(b), Cell::Null) => b.append_null(),
            (Builder::Int64(b), Cell::Null) => b.append_null(),
            (Builder::Float64(b), Cell::Null) => b.append_null(),
            (Builder::Bool(b), Cell::Null) => b.append_null(),
            (Builder::Text(b), Cell::Null) => b.append_null(),
            (Builder::TextList(b), Cell::Null) => b.append(false),
            (Builder::Date(b), Cell::Null) => b.append_null(),
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::TextList(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
        }
    }
}

/// A Parquet file with one typed column per [`Column`], snappy-compressed.
pub struct ParquetTable<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    names: Vec<String>,
    builders: Vec<Builder>,
    pending: usize,
    rows: u64,
}

impl<W: Write + Send> ParquetTable<W> {
    /// Starts a file on `out`.
    pub fn new(out: W, columns: &[Column]) -> Result<Self, ExportError> {
        let schema = arrow_schema(columns);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(BATCH_ROWS))
            .set_created_by(format!("heeldiary-export {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties))
            .map_err(|e| ExportError::Parquet(e.to_string()))?;
        Ok(ParquetTable {
            writer,
            schema,
            names: columns.iter().map(|c| c.name.clone()).collect(),
            builders: columns.iter().map(|c| Builder::new(c.ty)).collect(),
            pending: 0,
            rows: 0,
        })
    }

    fn flush_batch(&mut self) -> Result<(), ExportError> {
        if self.pending == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| ExportError::Parquet(e.to_string()))?;
        self.writer
            .write(&batch)
            .map_err(|e| ExportError::Parquet(e.to_string()))?;
        self.pending = 0;
        Ok(())
    }

    /// Closes the file and hands back the output.
    pub fn into_inner(mut self) -> Result<W, ExportError> {
        self.flush_batch()?;
        self.writer
            .into_inner()
            .map_err(|e| ExportError::Parquet(e.to_string()))
    }
}

impl<W: Write + Send> TableWriter for ParquetTable<W> {
    fn write_row(&mut self, row: &[Cell]) -> Result<(), ExportError> {
        if row.len() != self.builders.len() {
            return Err(ExportError::Parquet(format!(
                "a row of {} cells for {} columns",
                row.len(),
                self.builders.len()
            )));
        }
        for ((builder, cell), name) in self.builders.iter_mut().zip(row).zip(&self.names) {
            builder.push(cell, name)?;
        }
        self.pending += 1;
        self.rows += 1;
        if self.pending >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<u64, ExportError> {
        let rows = self.rows;
        let mut out = self.into_inner()?;
        out.flush().map_err(ExportError::io("parquet"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::{entry_columns, WordList};
    use heeldiary_core::{Location, Word, WordSet};

    fn columns() -> Vec<Column> {
        entry_columns(false)
            .into_iter()
            .filter(|c| {
                ["subject_id", "first_step_pain", "locations", "radiating"]
                    .contains(&c.name.as_str())
            })
            .collect()
    }

    fn row(pain: Option<i64>) -> Vec<Cell> {
        vec![
            Cell::Int(42),
            pain.map_or(Cell::Null, Cell::Int),
            Cell::List(WordList::new(
                <Location as Word>::VOCABULARY,
                WordSet::of(&[Location::HeelBottom, Location::Arch]),
            )),
            Cell::Bool(true),
        ]
    }

    #[test]
    fn csv_quotes_text_that_holds_a_separator_a_quote_or_a_line_break() {
        let notes = ["plain", "left, right", "said \"ouch\"", "two\nlines", ""];
        let mut table = CsvTable::new(Vec::new(), &columns()).unwrap();
        for note in notes {
            let mut cells = row(Some(3));
            cells[2] = Cell::Text(note.into());
            table.write_row(&cells).unwrap();
        }
        let text = table.into_inner().unwrap();
        assert!(String::from_utf8_lossy(&text).contains("\"said \"\"ouch\"\"\""));
        let mut reader = csv::Reader::from_reader(text.as_slice());
        let read: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[2].to_string())
            .collect();
        assert_eq!(read, notes);
    }

    #[test]
    fn csv_has_a_header_empty_fields_for_no_value_and_joined_lists() {
        let mut table = CsvTable::new(Vec::new(), &columns()).unwrap();
        table.write_row(&row(Some(7))).unwrap();
        table.write_row(&row(None)).unwrap();
        let text = String::from_utf8(table.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "subject_id,first_step_pain,locations,radiating\n42,7,heel_bottom;arch,true\n42,,heel_bottom;arch,true\n"
        );
    }

    #[test]
    fn ndjson_has_one_object_per_row_with_nulls() {
        let mut table = NdjsonTable::new(Vec::new(), &columns());
        table.write_row(&row(None)).unwrap();
        let text = String::from_utf8(table.into_inner()).unwrap();
        assert_eq!(
            text,
            "{\"subject_id\":42,\"first_step_pain\":null,\"locations\":[\"heel_bottom\",\"arch\"],\"radiating\":true}\n"
        );
    }

    #[test]
    fn parquet_refuses_a_value_of_the_wrong_type_and_a_short_row() {
        let mut table = ParquetTable::new(Vec::new(), &columns()).unwrap();
        assert!(table.write_row(&row(Some(300))).is_err());
        assert!(table.write_row(&row(Some(3))[..2]).is_err());
        let mut bad = row(Some(3));
        bad[3] = Cell::Text("yes".into());
        assert!(table.write_row(&bad).is_err());
    }

    #[test]
    fn parquet_writes_a_readable_file_with_every_row() {
        let mut table = ParquetTable::new(Vec::new(), &columns()).unwrap();
        for i in 0..(BATCH_ROWS as i64 + 5) {
            table.write_row(&row(Some(i % 11))).unwrap();
        }
        let bytes = table.into_inner().unwrap();
        let reader =
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        use parquet::file::reader::FileReader;
        assert_eq!(
            reader.metadata().file_metadata().num_rows(),
            BATCH_ROWS as i64 + 5
        );
        assert_eq!(reader.metadata().num_row_groups(), 2);
    }
}
