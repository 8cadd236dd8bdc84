"""The AgentTTS agent: Insight-1 probes, guideline prompts, defensive parsing of proposals."""
