"""Built-in training strategies, registered like any plugin's (parameters as typed models)."""

from vistrain.hookspecs import hookimpl


@hookimpl
def register_strategies(register):
    """Register ``supervised``, ``transfer``, ``distill``, ``pseudo-label`` and ``noisy-student``."""
    register("supervised", "vistrain.strategies.supervised:run_supervised",
             params="vistrain.strategies.supervised:SupervisedParams",
             description="plain supervised training on the labelled split")
    register("transfer", "vistrain.strategies.transfer:run_transfer",
             params="vistrain.strategies.transfer:TransferParams",
             description="reuse a checkpoint's or weights file's backbone: probe (head only) or finetune")
    register("distill", "vistrain.strategies.distill:run_distill",
             params="vistrain.strategies.distill:DistillParams",
             description="knowledge distillation (Hinton 2015) from a teacher checkpoint or a teacher stage")
    register("pseudo-label", "vistrain.strategies.pseudo_label:run_pseudo_label",
             params="vistrain.strategies.pseudo_label:PseudoLabelParams",
             description="teacher labels the unlabelled pool; student on labelled + confident pseudo-labels (Lee 2013)")
    register("noisy-student", "vistrain.strategies.noisy_student:run_noisy_student",
             params="vistrain.strategies.noisy_student:NoisyStudentParams",
             description="iterated self-training with noised, equal-or-larger students (Xie 2020)")
