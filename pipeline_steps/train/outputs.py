"""What a training job leaves besides checkpoints: its dvclive curves and its model folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..io import atomic_dir, atomic_write_json


def training_curves(live_dir: Path, resume: bool):
    """The run's dvclive logger, writing the run's own folder and nothing outside it.

    Stock dvclive, inside a DVC repository, opens the repository, adds its folder to git under
    `dvc exp run`, and writes and deletes one shared signal file for an IDE extension
    (``.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED``) at every step and at the end. The workflow runs
    jobs side by side: two runs ending together raced on deleting that file (FileNotFoundError),
    and parallel git adds would race on the index. DVC records the curves through the stages'
    outs instead, so a job never touches the repository.
    """
    import dvclive.live as dvclive_live

    class JobLive(dvclive_live.Live):
        def _init_dvc(self):
            self._save_dvc_exp = False

    # the IDE signal files are dvclive's only other writes outside its folder
    dvclive_live.mark_dvclive_step_completed = lambda step: None
    dvclive_live.cleanup_dvclive_step_completed = lambda: None
    return JobLive(str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=False)


def finish_model_folder(out: Path, work: Path, write_model, summary: dict) -> None:
    """Write the model folder atomically, with the run's dvclive curves and a summary (on the
    main process only when torchrun started several)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    with atomic_dir(out) as tmp:
        write_model(tmp)
        if (work / "dvclive").is_dir():
            shutil.copytree(work / "dvclive", tmp / "dvclive")
        atomic_write_json(tmp / "train_summary.json", summary)
