//! `vog rank`: the highest- or lowest-scoring examples of a scores file, and their images.
use crate::export::{self, OutputFormat};
use crate::grid::ImageLookup;
use crate::rank::{self, RankRequest, Ranking, Select};
use crate::scores::ScoresFile;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Which examples, in which order: shared by `vog rank` and `vog review`.
#[derive(Debug, Args)]
pub struct Which {
    /// Only the examples whose score meets COLUMN=VALUE, COLUMN>=VALUE or COLUMN<=VALUE
    /// (true/false for 1/0), e.g. `label_issue=true`.
    #[arg(long, value_name = "COND")]
    pub select: Option<Select>,
    /// The lowest scores first, instead of the highest.
    #[arg(long)]
    pub lowest: bool,
    /// Only this class (name or label number).
    #[arg(long)]
    pub class: Option<String>,
}

impl Which {
    /// The ranking request for `column`, `top` examples (`default_top`, or all with
    /// --select).
    pub fn request(&self, column: &str, top: Option<usize>, default_top: usize) -> RankRequest {
        RankRequest {
            top: top.unwrap_or(match self.select {
                Some(_) => usize::MAX,
                None => default_top,
            }),
            lowest: self.lowest,
            class: self.class.clone(),
            per_class: false,
            column: column.to_string(),
            select: self.select.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct RankArgs {
    /// Scores CSV written by `vog score`.
    pub scores: PathBuf,
    /// How many examples (per class with --per-class) [default: 25; all with --select].
    #[arg(long)]
    pub top: Option<usize>,
    #[command(flatten)]
    pub which: Which,
    /// The top examples of every class; with --grid, a highest and a lowest grid per class.
    #[arg(long, conflicts_with = "class")]
    pub per_class: bool,
    /// Score column: vog (class-normalized), vog_raw, or a further target's column.
    #[arg(long, default_value = "vog")]
    pub column: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Write the examples' images as a square grid PNG.
    #[arg(long, value_name = "FILE.png")]
    pub grid: Option<PathBuf>,
    /// Dataset location, if it moved since scoring.
    #[arg(long, requires = "grid")]
    pub data: Option<PathBuf>,
}

impl RankArgs {
    fn request(&self) -> RankRequest {
        RankRequest {
            per_class: self.per_class,
            ..self.which.request(&self.column, self.top, 25)
        }
    }
}

pub fn run(a: &RankArgs) -> Result<()> {
    let request = a.request();
    request.check()?;
    let file = ScoresFile::read(&a.scores)?;
    let ranking = Ranking::new(&file, &request)?;
    // Images are drawn before anything is printed, so a bad --grid leaves no output.
    if let Some(path) = &a.grid {
        rank::check_grid_path(path)?;
        let images = ImageLookup::load(&file.meta, a.data.as_deref())?;
        for p in ranking.write_grids(&images, path, &request)? {
            eprintln!(
                "wrote {} (legend: {})",
                p.display(),
                p.with_extension("csv").display()
            );
        }
    }
    export::write(std::io::stdout().lock(), &ranking, a.format)?;
    // Acting on out-of-sample flags, or showing their suggested labels, says how strong
    // their models were.
    let mut columns = request.columns();
    columns.push(crate::scores::SUGGESTED);
    if let Some(note) = file.meta.out_of_sample_note(&columns) {
        eprintln!("{note}");
    }
    Ok(())
}
