"""The ``bosun`` command: global options, the verbs, and one-line errors for everything."""

from __future__ import annotations

import faulthandler
import importlib
import os
import signal
import sys
from typing import Any

import click

from bosun.cli.common import CliError, CliState, api_error_line
from bosun.client.kubeconfig import KubeconfigError
from bosun.client.rest import TRANSPORT_ERRORS, ApiError


def _transport_line(e: BaseException, state: CliState | None) -> str:
    server = state.server.split("://", 1)[-1] if state is not None else ""
    detail = " ".join(str(e).split()) or type(e).__name__
    if server:
        return (f"error: the connection to the server {server} failed - did you specify the right host "
                f"or port? ({detail})")
    return f"error: cannot reach the server: {detail}"


# Verbs load on first use: `bosun get` should not pay for importing the API server.
LAZY_COMMANDS: dict[str, str] = {
    "agent": "bosun.cli.agent_cmd:agent",
    "alerts": "bosun.cli.alerts_cmd:alerts",
    "apply": "bosun.cli.apply:apply_cmd",
    "create": "bosun.cli.create:create_cmd",
    "delete": "bosun.cli.delete:delete_cmd",
    "describe": "bosun.cli.describe:describe_cmd",
    "get": "bosun.cli.get:get_cmd",
    "hollow": "bosun.cli.hollow_cmd:hollow",
    "image": "bosun.cli.image_cmd:image",
    "kubeconfig": "bosun.cli.kubeconfig_cmd:kubeconfig_cmd",
    "scheduler": "bosun.cli.scheduler_cmd:scheduler",
    "server": "bosun.cli.server_cmd:server",
    "secret": "bosun.cli.files_cmd:secret",
    "config": "bosun.cli.files_cmd:config",
    "service": "bosun.cli.service_cmd:service",
    "stack": "bosun.cli.stack_cmd:stack",
    "swarm": "bosun.cli.swarm_cmd:swarm",
    "node": "bosun.cli.node_cmd:node",
    "token": "bosun.cli.token_cmd:token",
    "up": "bosun.cli.up_cmd:up",
}


class BosunGroup(click.Group):
    """Turns any failure into one stderr line and exit code 1 (BOSUN_DEBUG=1 shows tracebacks)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in LAZY_COMMANDS:
            module, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
            cmd = getattr(importlib.import_module(module), attr)
            assert isinstance(cmd, click.Command)
            self.add_command(cmd, cmd_name)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        except ApiError as e:
            raise CliError(api_error_line(e)) from None
        except KubeconfigError as e:
            raise CliError(f"error: {e}") from None
        except TRANSPORT_ERRORS as e:
            raise CliError(_transport_line(e, ctx.find_object(CliState))) from None
        except Exception as e:
            if os.environ.get("BOSUN_DEBUG"):
                raise
            detail = " ".join(str(e).split())
            name = type(e).__name__
            raise CliError(f"error: {name}: {detail}" if detail else f"error: {name}") from None


@click.group(cls=BosunGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kubeconfig", default=None, envvar="KUBECONFIG",
              help="Kubeconfig file (default $KUBECONFIG, then ~/.kube/config).")
@click.option("--context", default=None, help="Kubeconfig context to use.")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's, else default).")
@click.pass_context
def cli(ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Bosun: a container orchestrator that speaks the Kubernetes API."""
    if kubeconfig and os.pathsep in kubeconfig:
        kubeconfig = next((p for p in kubeconfig.split(os.pathsep) if p), None)
    ctx.obj = CliState(kubeconfig=kubeconfig or None, context=context, namespace=namespace)


def main() -> None:
    """Console-script entry point: every failure, usage errors included, is one stderr line."""
    # `kill -USR1` prints every thread's stack to stderr and the command goes on: a command
    # that seems stuck can be asked where it is.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        rv = cli.main(prog_name="bosun", standalone_mode=False)
    except CliError as e:
        e.show()
        raise SystemExit(e.exit_code) from None
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "bosun"
        click.echo(f"error: {e.format_message()} (see '{where} --help')", err=True)
        raise SystemExit(1) from None
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        raise SystemExit(e.exit_code) from None
    except (click.exceptions.Abort, KeyboardInterrupt):
        raise SystemExit(130) from None
    except BrokenPipeError:  # `bosun get pods | head`
        sys.stderr.close()
        raise SystemExit(1) from None
    raise SystemExit(rv if isinstance(rv, int) else 0)
