"""aemg.train"""
