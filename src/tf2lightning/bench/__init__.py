"""Benchmarks of a migration: TF vs the PyTorch port, each side in its own child process.

Every benchmark runs the TensorFlow side and the torch side in separate child processes
(:mod:`~tf2lightning.bench.child`, JSON protocol in :mod:`~tf2lightning.bench.protocol`) on the same saved
inputs, batch size and thread count; each reports medians and IQRs of repeated timed runs after warm-up
(:mod:`~tf2lightning.bench.timing`) and its peak resident memory; the parent (no framework,
:mod:`~tf2lightning.bench.suite`) writes one TSV with ratios against the baseline: TF, or for a family
ported from plain PyTorch its plain loop, timed in the same child as Lightning. The machine is recorded
by :mod:`~tf2lightning.bench.machine`.

==============  ==========================================================  ==============================
task            what is timed                                               baseline of the ratios
==============  ==========================================================  ==============================
inference       TF: Keras call, ``tf.function``; torch: eager, TorchScript  the fastest TF variant
                ``export/model.ts``, ONNX Runtime ``export/model.onnx``;
                generic route: tf2onnx -> ONNX Runtime, -> onnx2torch
training        the family's Keras step vs a plain torch loop and            ``keras train step``
                Lightning ``Trainer.fit`` (per-step times), same batch;
                families ported from plain PyTorch: their own plain loop     ``plain loop``
                vs Lightning in one torch child (per step, or whole runs)
loading         ``tf.data`` on the legacy TFRecords vs the HDF5 DataModule   ``tf.data``
                with 0 and 2 workers (full passes over the train split);
                plain-PyTorch families: their plain loop's own reader        ``legacy reader``
convert         the legacy reader (``tf.data``, Clair3's ``.bin`` reader,    ``tf.data`` / ``legacy reader``
                the plain loop's reader) vs the family's data converter,     (per CPU second; none where
                each over every legacy file with 1 thread: MB/s of input     the family has no reader)
                (wall and per CPU second) and examples/s
==============  ==========================================================  ==============================

Torch variants also report their model FLOPs per item (counted once with ``FlopCounterMode``), the
achieved TFLOP/s and, on a GPU with a known peak, the model FLOPs utilisation
(:mod:`~tf2lightning.bench.mfu`, :mod:`~tf2lightning.bench.flops`).

How a family plugs in
---------------------
Inference needs nothing new: the TF side loads ``legacy.load_model(model_dir)`` (or ``bench.tf_model``)
and feeds it the reference probe inputs (``reference.h5``) tiled to one batch; the torch side uses the
converted weights, the exports, ``model.parity_inputs`` / ``example_inputs`` (dtypes) and
``PARITY_OUTPUTS`` (to compare each variant's outputs with TF's). Anything else is declared in an optional
module ``families/<name>/bench.py`` (importing no framework at module level):

======================================================  ====  =============================================
factory                                                 side  used by
======================================================  ====  =============================================
``TASKS``: tuple of task names beyond ``inference``     none  the workflow (which rules to run)
``DEVICE``: ``"cpu"`` to keep every child off the GPU   none  all tasks (default ``"auto"``)
``train_batch(run, h5, batch_size) -> {name: array}``   none  training: the batch both sides train on
``tf_train_step(run, keras_model, batch) -> () -> Any``  TF    training: one optimizer step
``torch_plain_step(run, model, batch) -> () -> Any``    torch training: the family's own plain-loop step
                                                              (default: the LightningModule's
                                                              ``batch_loss(batch)`` and optimizer)
``torch_fit(run, paths, out_dir, lightning=) -> int``   torch training over whole runs (instead of one
                                                              batch): one run of either loop, examples
                                                              trained
``torch_batch(run, arrays) -> batch``                   torch training: the batch as ``lit`` expects it
                                                              (default: dict of tensors)
``tf_model(run, model_dir) -> keras.Model``             TF    inference/training (default
                                                              ``legacy.load_model``)
``tf_dataset(run, legacy_dir, batch_size) -> iterable``  TF    loading: the legacy ``tf.data`` pipeline
``legacy_batches(run, legacy_dir, batch_size)``         torch loading: the plain loop's own reader
``legacy_reads(run, legacy_dir, batch_size) -> list``   both  convert: the reader's pipelines over every
                                                              legacy file (what ``data.convert`` reads)
``DATA_VIEWS``: ``{name: arch keys}``                   none  loading, once per view, where the loaders
                                                              depend on the architecture
``data_view(run) -> name``                              none  the report: a combination's view
======================================================  ====  =============================================

``convert`` times ``data.convert`` and ``legacy_reads`` (on the TF side, or the torch side for a family ported
from plain PyTorch) with their CPU seconds (:mod:`~tf2lightning.bench.reading`); torch-side ``loading`` uses
``data.make_datamodule`` with ``run.train`` overridden (``num_workers``, ``batch_size``). The DGA family's
``bench.py`` is the example for a TF family; ``epibert`` (one batch of stored rows and augmentation draws that
each side augments with its own pipeline) and ``clair3`` (``tf_model``, ``torch_batch``, Clair3's own ``.bin``
reader) add to it; ``d3`` (per-step training, its own reader) and ``tabular`` (whole runs) are families ported
from plain PyTorch.
"""
