"""aemg.tokenizer"""
