"""OCR as three pipeline stages: det (text boxes) -> cls (upright or upside down) -> rec (text).

Modules: ``runtime`` (models, dictionary, onnxruntime sessions), ``image`` (input decoding),
``boxes`` (DB post-processing), ``crop`` (line rectification), ``det``/``cls``/``rec`` (the stages'
batched functions), ``payload`` (the binary det->cls->rec encoding), ``stages`` (the batch handlers
the stage helper serves). The models are PaddleOCR's, as shipped in ``rapidocr-onnxruntime``; the
pre- and post-processing here is this package's own.
"""
