"""``eval_loss`` as transformers' ``Trainer`` reports it: the mean over examples, not over batches.

``Trainer.evaluation_loop`` (transformers 5.25) repeats each batch's mean loss ``per_device_eval_batch_size``
times and gathers the repeats with ``accelerator.gather_for_metrics``, which drops those past the examples of
the last, shorter batch: ``eval_loss`` is the mean over examples. ``Seq2SeqTrainer.evaluate`` and ``predict``
switch the gather to ``accelerator.gather`` for every tensor, because ``gather_for_metrics`` cut the generated
sequences of the last batch short when ``num_return_sequences`` > 1 (transformers PR 27025, issue 25231). The
loss then keeps all its repeats, and a last batch of 2 examples weighs as much as a full one of 8: with 66
examples in batches of 8, ``eval_loss`` is the mean of 9 batch means (0.481 where the mean over the examples
is 0.503, tests/test_trainer_parity.py).

``LossGather`` gives the loss ``Trainer``'s gather and leaves predictions and labels to the one
``Seq2SeqTrainer`` chose. ``evaluation_loop`` gathers a batch's loss first, right after ``prediction_step``
returns it, so ``prediction_step`` tells it which call is the loss's (``expect_loss``).
"""

from collections.abc import Callable


class LossGather:
    """A ``Trainer.gather_function``: ``gather_for_metrics`` for the loss, ``gather`` for everything else."""

    def __init__(self, accelerator, gather: Callable, use_gather_object: bool = False):
        # A LossGather left installed by an evaluation that raised is not wrapped a second time.
        self.gather = gather.gather if isinstance(gather, LossGather) else gather
        self.accelerator = accelerator
        self.use_gather_object = use_gather_object
        self.loss_next = False

    def expect_loss(self, loss) -> None:
        """Called by ``prediction_step`` with the loss it returns: the next call gathers that loss."""
        self.loss_next = loss is not None

    def __call__(self, tensor):
        if self.loss_next:
            self.loss_next = False
            return self.accelerator.gather_for_metrics(tensor, use_gather_object=self.use_gather_object)
        return self.gather(tensor)
