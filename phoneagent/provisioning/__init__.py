"""Tenants, API keys and the LiveKit-backed resources (trunks, dispatch rules, numbers, agent profiles).

Service functions own their transaction: a LiveKit object is created before the row is committed, a
failed LiveKit call rolls the row back, and a failed commit removes the LiveKit object again.
"""
