"""`cdp`: the Tributary command line."""

from __future__ import annotations

import click

from cdp_server.cli import (
    audiences,
    audit,
    destinations,
    events,
    governance,
    identity,
    importer,
    predict,
    privacy,
    profile,
    rejected,
    serve,
    sources,
    tail,
    tokens,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tributary-cdp", prog_name="cdp", message="%(prog)s (tributary-cdp) %(version)s")
def main() -> None:
    """Tributary: a self-hosted Customer Data Platform."""


main.add_command(serve.serve)
main.add_command(sources.source)
main.add_command(importer.import_file)
main.add_command(tail.tail)
main.add_command(events.events)
main.add_command(profile.profile)
main.add_command(identity.identity)
main.add_command(rejected.rejected)
main.add_command(tokens.token)
main.add_command(governance.plan)
main.add_command(governance.violations)
main.add_command(privacy.privacy)
main.add_command(audit.audit)
main.add_command(audiences.audience)
main.add_command(audiences.computed_trait)
main.add_command(predict.predict)
main.add_command(destinations.destination)
main.add_command(destinations.deadletters)
