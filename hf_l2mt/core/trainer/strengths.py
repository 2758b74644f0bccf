"""The regularizers' strengths at each update (base strength × schedule, per parameter group with overrides) and
what a logging step reports of them: strengths, penalties, ‖θ − θ₀‖₂, KL-to-base, skipped updates."""

from ..nonfinite import SKIPPED_METRIC
from ..regularizers.lora_l2sp import lora_l2sp_penalty
from ..schedules import schedule_factor


class RegularizerStrengths:
    """``L2MTTrainer``'s strengths and logged regularizer metrics (a mixin: it reads the trainer's state)."""

    def _factor(self, term: str, step: int) -> float:
        args = self.args
        return schedule_factor(
            getattr(args, f"{term}_schedule"),
            step,
            max(self.state.max_steps, 1),
            warmup_steps=getattr(args, f"{term}_warmup_steps"),
            sigmoid_k=getattr(args, f"{term}_sigmoid_k"),
            sigmoid_t0=getattr(args, f"{term}_sigmoid_t0"),
        )

    def current_strengths(self, step: int | None = None) -> dict[str, float]:
        """Base strengths times their schedules at ``step`` (default: the update about to happen)."""
        step = self.state.global_step if step is None else step
        strengths = {
            "l2sp_lambda": self.args.l2sp_lambda * self._factor("l2sp", step),
            "weight_decay": self.args.weight_decay * self._factor("weight_decay", step),
        }
        if self.args.kl_lambda > 0:
            strengths["kl_lambda"] = self.args.kl_lambda * self._factor("kl", step)
        if self.args.l1_lambda > 0:
            strengths["l1_lambda"] = self.args.l1_lambda
        if self.args.lora_l2sp_lambda > 0:
            strengths["lora_l2sp_lambda"] = self.args.lora_l2sp_lambda
        return strengths

    def group_strengths(self, step: int) -> dict[str, float]:
        """With ``l2sp_overrides`` / ``weight_decay_overrides``, what each group got at ``step``, keyed
        ``l2sp_lambda/<group>`` / ``weight_decay/<group>`` (group names as in the group table)."""
        strengths = {}
        for term, overrides in (("l2sp", self.args.l2sp_overrides), ("weight_decay", self.args.weight_decay_overrides)):
            if overrides and self.regularized_groups is not None:
                factor = self._factor(term, step)
                key = "l2sp_lambda" if term == "l2sp" else term
                strengths.update({f"{key}/{g.name}": getattr(g, key) * factor for g in self.regularized_groups})
        return strengths

    def regularization_metrics(self) -> dict[str, float]:
        """The logged values: strengths used by the latest update, the penalty and ‖θ − θ₀‖₂."""
        latest = max(self.state.global_step - 1, 0)
        metrics = self.current_strengths(latest)
        metrics.update(self.group_strengths(latest))
        anchored = [g for g in self.regularized_groups if g.has_l2sp and g.params] if self._groups_bound else []
        if anchored:
            l2sp_factor = self._factor("l2sp", latest)
            penalty, distance_sq = 0.0, 0.0
            for group in anchored:
                sq, weighted = group.l2sp_sums()
                penalty += 0.5 * group.l2sp_lambda * l2sp_factor * weighted
                distance_sq += sq
            self.nonfinite.check_penalty(self.state.global_step, penalty)
            metrics["l2sp_penalty"] = penalty
            metrics["l2sp_distance"] = distance_sq**0.5
        if self.args.l1_lambda > 0:
            metrics["l1_penalty"] = self.args.l1_lambda * sum(group.l1_distance() for group in self.regularized_groups)
        if self.args.lora_l2sp_lambda > 0:
            metrics["lora_l2sp_penalty"] = lora_l2sp_penalty(self._lora_pairs(), self.args.lora_l2sp_lambda)
        if self._kl_tokens is not None:
            metrics["kl_to_base"] = float(self._kl_sum) / max(int(self._kl_tokens), 1)
            self._kl_sum, self._kl_tokens = None, None
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            self.nonfinite.check()
        if "loss" in logs and self.regularized_groups is not None:
            logs = {**logs, **self.regularization_metrics()}
        if "loss" in logs and self.args.nonfinite_loss == "skip":
            logged = next((row[SKIPPED_METRIC] for row in reversed(self.state.log_history) if SKIPPED_METRIC in row), 0)
            logs[SKIPPED_METRIC], self.nonfinite.skipped = logged + self.nonfinite.skipped, 0
        super().log(logs, start_time)
