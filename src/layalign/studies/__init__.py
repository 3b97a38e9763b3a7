"""Studies: a comparison of systems x seeds on a benchmark, declared in YAML (`spec`), run unit by unit and resumable
(`runner`), and reported from the finished units (`report`, with `budget` and `sections`); `layalign study` on the
command line (`command`)."""

from layalign.studies.spec import Study, StudyError, Unit, load_study, parse_unit, plan

__all__ = ["Study", "StudyError", "Unit", "load_study", "parse_unit", "plan"]
