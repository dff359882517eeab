"""aemg.eval"""
