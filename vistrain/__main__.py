from vistrain.cli import run

run()
