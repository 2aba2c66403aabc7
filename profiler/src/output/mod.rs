//! Output files: Vidur's CSV layout and the run metadata.

pub mod vidur_csv;
