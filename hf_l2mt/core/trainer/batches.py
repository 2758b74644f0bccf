"""Batches and evaluation: token-budget training batches, loaders whose workers leave stop signals to the
training process, generation capped at the decoder's positions, and ``eval_loss`` over examples."""

from functools import partial

from torch.utils.data import DataLoader, IterableDataset
from transformers.trainer_utils import seed_worker
from transformers.utils import is_datasets_available

from ..batching import TokenBudgetBatchSampler, int_list, pair_lengths
from ..eval_loss import LossGather
from ..generation_length import capped_generate_kwargs
from ..preemption import workers_ignore_stop_signals

if is_datasets_available():
    import datasets


class BatchesAndEvaluation:
    """``L2MTTrainer``'s data loaders and evaluation steps (a mixin over ``Seq2SeqTrainer``)."""

    def _get_train_sampler(self, train_dataset=None):
        """As ``Trainer._get_train_sampler``, with the length column read once into a list: transformers
        hands ``group_by_length`` a lazy datasets ``Column`` and reads it one pair at a time (minutes per
        epoch on a few hundred thousand pairs)."""
        sampler = super()._get_train_sampler(train_dataset)
        lengths = getattr(sampler, "lengths", None)
        if lengths is not None and not isinstance(lengths, list):
            sampler.lengths = int_list(lengths)
        return sampler

    def get_train_dataloader(self) -> DataLoader:
        """As ``Trainer.get_train_dataloader``, with token-budget batches when ``max_tokens_per_batch`` is set."""
        dataset = self.train_dataset
        if self.args.max_tokens_per_batch is None or dataset is None or isinstance(dataset, IterableDataset):
            return super().get_train_dataloader()
        sampler = TokenBudgetBatchSampler(pair_lengths(dataset, self.args.length_column_name),
                                          self.args.max_tokens_per_batch, seed=self.args.data_seed or self.args.seed)
        collator = self.data_collator
        if is_datasets_available() and isinstance(dataset, datasets.Dataset):
            dataset = self._remove_unused_columns(dataset, description="Training")
        else:
            collator = self._get_collator_with_removed_columns(collator, description="Training")
        loader = DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collator, num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory, persistent_workers=self.args.dataloader_persistent_workers,
            prefetch_factor=self.args.dataloader_prefetch_factor,
            worker_init_fn=partial(seed_worker, num_workers=self.args.dataloader_num_workers,
                                   rank=self.args.process_index),
        )
        return self.accelerator.prepare(loader)

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        """As ``Trainer.get_eval_dataloader``; its workers leave stop signals to the training process."""
        return workers_ignore_stop_signals(super().get_eval_dataloader(eval_dataset))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """As ``Seq2SeqTrainer.prediction_step``, with generation capped at the decoder's positions
        (``hf_l2mt.core.generation_length``): past them an encoder-decoder with a position table fails with an
        ``IndexError``, so a ``generation_max_length`` above them changes only the evaluations that would crash."""
        if self.args.predict_with_generate and not prediction_loss_only:
            gen_kwargs = capped_generate_kwargs(self.model, gen_kwargs or getattr(self, "_gen_kwargs", {}))
        loss, predictions, labels = super().prediction_step(model, inputs, prediction_loss_only,
                                                            ignore_keys=ignore_keys, **gen_kwargs)
        if isinstance(self.gather_function, LossGather):
            self.gather_function.expect_loss(loss)
        return loss, predictions, labels

    def evaluation_loop(self, *args, **kwargs):
        """As ``Trainer.evaluation_loop``, with ``eval_loss`` the mean over examples as ``Trainer`` has it, where
        ``Seq2SeqTrainer`` averages batch means (``hf_l2mt.core.eval_loss``)."""
        self.gather_function = LossGather(self.accelerator, self.gather_function, self.args.eval_use_gather_object)
        return super().evaluation_loop(*args, **kwargs)
