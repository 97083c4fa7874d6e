"""`python -m trainer train|promote|rollback|retrain`: the command line.

Exit codes: 0 ok, 1 a model/run failed (nothing registered, no alias moved), 2 bad input or
usage, 3 tracking server unreachable. Errors are one line on stderr:
`trainer: error: <what is wrong>: <what to do>`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence

from trainer.candidates import (
    CUSTOM_MODEL_NAME,
    DEFAULT_ALPHAS,
    LASSO_MODEL_NAME,
    custom_model,
    lasso_grid,
    load_config,
    parse_alphas,
)
from trainer.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_UNREACHABLE,
    ConfigError,
    RunFailed,
    TrainerError,
)
from trainer.settings import TrainerSettings

PROG = "trainer"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D102 - argparse hook
        self.exit(EXIT_BAD_INPUT, f"{PROG}: error: {message}: see `python -m trainer {self._cmd()} --help`\n")

    def _cmd(self) -> str:
        parts = self.prog.split()
        return parts[-1] if len(parts) > 1 else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train the exercise models, register them and manage "
                     "the champion alias on the MLflow tracking server (MLFLOW_TRACKING_URI).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="fit, log and register candidates; move champion to the best",
                           description="Fit every candidate (exercise-1 Lasso grid, exercise-2 custom "
                           "model, config models), log one run each, register them and move the "
                           "champion alias per model name when the best beats it by --margin.")
    train.add_argument("--data", help="CSV/Parquet path or s3:// URI (default: generate the course data)")
    train.add_argument("--target", default="y", help="target column of --data (default: y)")
    train.add_argument("--config", help="YAML with extra models (default: $TRAINER_CONFIG_FILE)")
    train.add_argument("--alphas", default=",".join(map(str, DEFAULT_ALPHAS)),
                       help="comma-separated Lasso alphas (default: %(default)s)")
    train.add_argument("--offset", type=float, default=0.0, help="custom model offset (default: 0)")
    train.add_argument("--experiment", default="driftline-training",
                       help="MLflow experiment (default: %(default)s)")
    train.add_argument("--lasso-model-name", default=LASSO_MODEL_NAME, help="default: %(default)s")
    train.add_argument("--custom-model-name", default=CUSTOM_MODEL_NAME, help="default: %(default)s")
    train.add_argument("--margin", type=float, default=0.01,
                       help="relative hold-out MSE improvement needed to replace the champion "
                       "(0.01 = 1%%; default: %(default)s)")
    train.add_argument("--autolog", action="store_true", help="also turn on mlflow.autolog() during fits")
    train.add_argument("--rows", type=int, default=100, help="rows of generated data (default: 100)")
    train.add_argument("--seed", type=int, default=42, help="data generation and split seed (default: 42)")
    train.set_defaults(handler=cmd_train)

    promote = sub.add_parser("promote", help="point champion at a version (default: best hold-out MSE)",
                             description="Move the champion alias to --version, or to the version "
                             "with the best recorded hold-out MSE; the old champion becomes previous. "
                             "The margin does not apply: this is an explicit decision.")
    promote.add_argument("--model", required=True, help="registered model name")
    promote.add_argument("--version", help="version to promote (default: best hold-out MSE)")
    promote.add_argument("--reason", default="", help="why (recorded in the alias history)")
    promote.set_defaults(handler=cmd_promote)

    rollback = sub.add_parser("rollback", help="swap champion and previous",
                              description="Move champion back to the previous alias's version; the "
                              "replaced champion becomes previous, so a second rollback undoes the first.")
    rollback.add_argument("--model", required=True, help="registered model name")
    rollback.add_argument("--reason", default="", help="why (recorded in the alias history)")
    rollback.set_defaults(handler=cmd_rollback)
    retrain = sub.add_parser("retrain", help="refit the champion's kind on recent batches; set challenger",
                             description="Fit the champion's kind and parameters again on --data (the "
                             "recent labelled batches, written by the monitor), register it with lineage "
                             "tags and give it the challenger alias. Never moves champion: the challenger "
                             "must win the monitor's paired test first.")
    retrain.add_argument("--model", required=True, help="registered model name")
    retrain.add_argument("--data", required=True, help="CSV/Parquet of labelled rows (path or s3:// URI)")
    retrain.add_argument("--with-reference", action="store_true",
                         help="also train on the champion's reference rows")
    retrain.add_argument("--alias", default="challenger", help="alias for the result (default: %(default)s)")
    retrain.add_argument("--request", default="", help="the monitor's retraining request id (lineage)")
    retrain.add_argument("--batches", default="", help="ids of the batches in --data (lineage)")
    retrain.add_argument("--experiment", default="driftline-retraining",
                         help="MLflow experiment (default: %(default)s)")
    retrain.add_argument("--seed", type=int, default=42, help="train/hold-out split seed (default: 42)")
    retrain.set_defaults(handler=cmd_retrain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The progress lines and the summary are the output; MLflow's own chatter is not.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore")
    import mlflow  # noqa: F401 - configures its loggers on import; quiet them afterwards

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        settings = _settings()
        return args.handler(args, settings)
    except TrainerError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted: no alias was moved unless reported above")
        return EXIT_RUN_FAILED
    except Exception as exc:  # noqa: BLE001 - one line, no traceback, for any MLflow/server failure
        code, todo = EXIT_RUN_FAILED, "check the tracking server's log and retry"
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        if any(s in text for s in ("401", "403", "Unauthorized", "Permission")):
            code, todo = EXIT_BAD_INPUT, "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        elif any(s in text.lower() for s in ("max retries", "connection refused", "timed out")):
            code, todo = EXIT_UNREACHABLE, "check that the tracking server is up (MLFLOW_TRACKING_URI)"
        _error(f"{type(exc).__name__}: {text}: {todo}")
        return code


def _settings() -> TrainerSettings:
    from pydantic import ValidationError

    try:
        return TrainerSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0] if e['loc'] else ''}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid environment ({problems})", "fix the named variable") from exc


def _client(settings: TrainerSettings):  # noqa: ANN202 - MlflowClient
    import mlflow

    from trainer.tracking import check_reachable

    check_reachable(settings.tracking_uri, settings.health_timeout)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=settings.tracking_uri)


def cmd_train(args: argparse.Namespace, settings: TrainerSettings) -> int:
    from trainer import data as data_module
    from trainer import training
    from trainer.tracking import actor

    if not 0.0 <= args.margin < 1.0:
        raise ConfigError(f"--margin {args.margin} is out of range", "use a fraction in [0, 1), e.g. 0.01")
    for option, value in (("--lasso-model-name", args.lasso_model_name),
                          ("--custom-model-name", args.custom_model_name), ("--experiment", args.experiment)):
        if not value.strip():
            raise ConfigError(f"{option} is empty", "give a name")
    candidates = [*lasso_grid(parse_alphas(args.alphas), args.lasso_model_name),
                  custom_model(args.offset, args.custom_model_name)]
    config_path = args.config or settings.config_file
    if config_path:
        candidates += load_config(config_path)
    if args.data:
        dataset = data_module.load(args.data, args.target, split_seed=args.seed)
    else:
        dataset = data_module.generated(rows=args.rows, seed=args.seed, split_seed=args.seed)
    client = _client(settings)
    print(f"training {len(candidates)} candidate(s) on {dataset.source}: {dataset.rows} rows, "
          f"features {', '.join(dataset.features)}, target {dataset.target}, "
          f"experiment {args.experiment}", flush=True)
    started = time.perf_counter()
    report = training.train(client, dataset, candidates, experiment=args.experiment, margin=args.margin,
                            actor=actor(settings.actor), autolog=args.autolog,
                            progress=lambda line: print(line, flush=True))
    if not report.failed:
        _demo_promotion_policy(client, [args.lasso_model_name, args.custom_model_name])
    print()
    print(summary_table(report))
    print(f"\n{time.perf_counter() - started:.1f}s in total")
    if report.failed:
        names = "; ".join(f"{r.candidate.display} {r.candidate.params_text()} ({r.error})"
                          for r in report.failed)
        raise RunFailed(f"{len(report.failed)} candidate(s) failed to fit: {names}",
                        "fix them (see the FAILED runs) and retry; nothing was registered and no alias moved")
    return EXIT_OK


def _demo_promotion_policy(client, names: list[str]) -> None:  # noqa: ANN001 - MlflowClient
    """The exercise models are the demo: the monitor may promote their challengers by itself
    (`driftline.promotion=auto`, docs/promotion.md). A policy a team set is left alone."""
    from mlflow.exceptions import MlflowException

    for name in names:
        try:
            if "driftline.promotion" not in (client.get_registered_model(name).tags or {}):
                client.set_registered_model_tag(name, "driftline.promotion", "auto")
        except MlflowException:
            continue  # not registered by this run (e.g. nothing fitted): nothing to tag


def summary_table(report) -> str:  # noqa: ANN001 - training.TrainReport
    rows = [("model", "version", "candidate", "params", "mse", "mae", "r2", "status")]
    champions = {d.model_name: (d.winner.version if d.moved and d.winner else d.champion_before)
                 for d in report.decisions}
    for r in report.results:
        metrics = [f"{r.metrics[key]:.4f}" if key in r.metrics else "-"
                   for key in ("mean_squared_error", "mean_absolute_error", "r2")]
        champion = r.version is not None and champions.get(r.candidate.model_name) == r.version
        status = r.status + (" *champion" if champion else "")
        rows.append((r.candidate.model_name, f"v{r.version}" if r.version else "-", r.candidate.display,
                     r.candidate.params_text(), *metrics, status))
    lines = [_align(rows)]
    if report.decisions:
        lines.append("")
        lines.append("decision:")
        for d in report.decisions:
            verb = "champion ->" if d.moved else "champion kept:"
            lines.append(f"  {d.model_name}: {verb} {d.reason}")
    elif report.failed:
        lines.append("\ndecision: none (a candidate failed; nothing registered, no alias moved)")
    return "\n".join(lines)


def _align(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {4, 5, 6}
    out = []
    for row in rows:
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def cmd_promote(args: argparse.Namespace, settings: TrainerSettings) -> int:
    from trainer import registry
    from trainer.tracking import actor

    client = _client(settings)
    if args.version:
        version = registry.get_version(client, args.model, args.version)
        reason = args.reason or f"promote: v{version.version} chosen explicitly"
    else:
        version = registry.best_version(client, args.model)
        mse = registry.holdout_mse(version)
        reason = args.reason or f"promote: best recorded hold-out mse {mse:.4f}"
    _validate(client, args.model, version.version)
    moves = registry.make_champion(client, args.model, version.version, actor(settings.actor), reason,
                                   rolled_back=bool(version.tags.get(registry.TAG_ROLLED_BACK)))
    _print_moves(args.model, moves, f"v{version.version} is already champion; nothing moved")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace, settings: TrainerSettings) -> int:
    from trainer import registry
    from trainer.tracking import actor

    client = _client(settings)
    registry.require_model(client, args.model)
    previous = registry.alias_version(client, args.model, registry.PREVIOUS)
    if previous is not None:
        _validate(client, args.model, previous.version)
    reason = args.reason or "rollback"
    moves = registry.rollback(client, args.model, actor(settings.actor), reason)
    _print_moves(args.model, moves, "nothing moved")
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace, settings: TrainerSettings) -> int:
    import json

    from trainer import data as data_module
    from trainer import registry, retraining, training
    from trainer.reference import load_reference
    from trainer.tracking import actor

    if args.alias.strip() in ("", "champion"):
        raise ConfigError(f"--alias {args.alias!r} is not allowed", "retrain sets challenger, never champion")
    client = _client(settings)
    registry.require_model(client, args.model)
    candidate, champion, features, target = retraining.candidate_for(client, args.model)
    batches = data_module.read_table(args.data)
    reference = load_reference(client, args.model, champion).train if args.with_reference else None
    frame = retraining.training_table(batches, features, target, reference)
    source = f"retrain:{args.model}:request={args.request or '-'}:{args.data}"
    dataset = retraining.as_training_data(frame, target, source, args.seed)
    candidate = retraining.refit_params(candidate, dataset)
    print(f"retraining {args.model} (champion v{champion}, {candidate.display} {candidate.params_text()}) "
          f"on {dataset.rows} rows{' with the reference' if reference is not None else ''}", flush=True)
    report = training.train(client, dataset, [candidate], experiment=args.experiment,
                            actor=actor(settings.actor), select=False,
                            progress=lambda line: print(line, flush=True))
    if report.failed or not report.results or not report.results[0].version:
        error = report.results[0].error if report.results else "nothing fitted"
        raise RunFailed(f"retraining {args.model} failed ({error})", "no alias was moved")
    version = report.results[0].version
    _validate(client, args.model, version)
    retraining.set_challenger(client, args.model, version, {
        retraining.TAG_REQUEST: args.request, retraining.TAG_BATCHES: args.batches,
        retraining.TAG_FROM: champion, retraining.TAG_WITH_REFERENCE: str(reference is not None).lower()},
        alias=args.alias)
    print(json.dumps({"model": args.model, "version": version, "alias": args.alias, "champion": champion,
                      "rows": dataset.rows}))
    return EXIT_OK


def _validate(client, name: str, version: str) -> None:  # noqa: ANN001
    """Load the version through models:/ and predict its own hold-out before any alias moves."""
    from trainer import registry
    from trainer.reference import load_reference

    try:
        reference = load_reference(client, name, version)
        features = reference.holdout[reference.features]
    except TrainerError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise RunFailed(f"cannot rebuild the hold-out of {name} v{version} ({exc})",
                        "no alias was moved; check the version's run artifacts") from exc
    registry.predict_version(name, version, features)


def _print_moves(name: str, moves: list, nothing: str) -> None:
    if not moves:
        print(f"{name}: {nothing}")
    for move in moves:
        was = f" (was v{move.replaced})" if move.replaced else ""
        print(f"{name}: {move.alias} -> v{move.version}{was}: {move.reason}")


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


__all__ = ["main", "build_parser", "summary_table", "EXIT_UNREACHABLE"]
