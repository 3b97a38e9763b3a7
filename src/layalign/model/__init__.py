"""The model: everything between source text and the LLM's loss or generated tokens.

config      LayAlignConfig, the settings that make LayAlign, MindMerger and LangBridge one model
modeling    LayAlignModel: encode -> align -> build the LLM input -> LLM with the fusion branch; save and load
aligner     the input mapping (soft tokens) and the layer-wise aligner (encoder states -> each layer's K/V)
fusion      the attention-time branch only: g_i * softmax(Q K_i^T) V_i added inside every fused LLM layer
processing  LayAlignProcessor: texts -> padded tensors for both tokenizers
"""
