"""Built-in training strategies, registered like any plugin's (parameters as typed models)."""

from vistrain.hookspecs import hookimpl


@hookimpl
def register_distill_losses(register):
    """Register ``kd``, ``dkd`` and ``dist`` (lazy factories: listing them does not import torch)."""
    module = "vistrain.strategies.distill_losses"
    register("kd", f"{module}:make_kd", description="Hinton 2015: T^2 KL of the softened outputs")
    register("dkd", f"{module}:make_dkd",
             description="decoupled KD (Zhao 2022): alpha TCKD + beta NCKD (strategy.params.dkd_alpha, dkd_beta)")
    register("dist", f"{module}:make_dist",
             description="DIST (Huang 2022): inter- and intra-class correlation (strategy.params.dist_beta, dist_gamma)")


@hookimpl
def register_strategies(register):
    """Register ``supervised``, ``transfer``, ``distill``, ``pseudo-label``, ``noisy-student``, ``fixmatch`` and
    ``flexmatch``."""
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
    register("fixmatch", "vistrain.strategies.consistency:run_fixmatch",
             params="vistrain.strategies.consistency:FixMatchParams",
             description="consistency training (Sohn 2020): confident weak-view pseudo-labels teach the strong view")
    register("flexmatch", "vistrain.strategies.consistency:run_flexmatch",
             params="vistrain.strategies.consistency:FlexMatchParams",
             description="FixMatch with class-wise thresholds from each class's learning status (Zhang 2021)")
