"""aemg.model"""
