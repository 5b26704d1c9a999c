"""The ``agentrun`` kind: folders kept in step with a directory of an AgentRun sandbox."""
