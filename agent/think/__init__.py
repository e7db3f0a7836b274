"""Stage 3, think: the controller decides between a spoken answer and a tool call.

controller.py (one LLM pass, streaming) over llm.py (LangChain backends: llama.cpp, ollama,
OpenAI-compatible) and llm_state.py (warm prompt prefixes on disk), with router.py (MiniLM
semantic router), toolcall.py (lenient tool-call JSON), prompts.py (prompts/) and sentences.py
(streamed text cut into speakable sentences). The tools it calls are in tools/.
"""
