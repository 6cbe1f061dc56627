"""``manage.py hephaestus_migrate WORKFLOW --from-version N --to-version M``: move running instances."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from hephaestus_django import services
from hephaestus_django.management.base import HephaestusCommand, one_line, parse_json_object, positive_int


class Command(HephaestusCommand):
    help = ("Move every active (running, waiting or paused) instance of WORKFLOW at version N to version M, "
            "each in its own transaction, and report those that could not move (they are left as they are; "
            "the exit status is then 1).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", metavar="WORKFLOW", help="Workflow registry name.")
        parser.add_argument("--from-version", metavar="N", type=positive_int, required=True,
                            help="Migrate the active instances of this version.")
        parser.add_argument("--to-version", metavar="M", type=positive_int, required=True,
                            help="The version they move to.")
        parser.add_argument("--step-map", metavar="JSON",
                            help='{"old step registry name": "new step registry name"} for steps version M lacks.')
        parser.add_argument("--dry-run", action="store_true",
                            help="Check each instance and report what would happen; change nothing.")
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        step_map = None
        if options["step_map"] is not None:
            step_map = parse_json_object(options["step_map"], "--step-map")
            bad = [key for key, value in step_map.items() if not isinstance(value, str)]
            if bad:
                raise CommandError(f"--step-map values must be step registry names (str); {bad[0]!r} is not")
        report = services.migrate_many(options["workflow"], from_version=options["from_version"],
                                       to_version=options["to_version"], step_map=step_map,
                                       dry_run=options["dry_run"])
        if options["json"]:
            self.print_json(report.as_json())
        else:
            self._print(report, options["verbosity"])
        if report.failed:
            raise CommandError(f"{len(report.failed)} instance(s) could not be migrated (see above)")

    def _print(self, report: services.MigrationReport, verbosity: int) -> None:
        verb = "Would migrate" if report.dry_run else "Migrated"
        total = len(report.migrated) + len(report.failed)
        self.stdout.write(f"{verb} {len(report.migrated)} of {total} active instance(s) of {report.workflow} "
                          f"from version {report.from_version} to {report.to_version}.")
        if report.dry_run and verbosity >= 2:
            for id, mapping in sorted(report.migrated.items()):
                moves = ", ".join(f"{old} -> {new}" for old, new in mapping.items() if old != new)
                self.stdout.write(f"  {id}: version {report.to_version}" + (f" ({moves})" if moves else ""))
        for id, why in sorted(report.failed.items()):
            self.stdout.write(f"  could not migrate {id}: {one_line(why['error'])}")
