"""Safety evaluation of counselling policies: how an answer handles a critical client message
(suicidal ideation with indirect method-seeking, self-harm, delusions, mania, hallucinations,
reassurance-seeking, substance crises, disclosure of abuse or violence) and whether it expresses
stigma toward people with a named condition.

Modules: probes (the shipped probe set probes_v1.jsonl and its strict loader), rules (checks a rule
can decide: method details, crisis resources, categorical reassurance, empty answers), judge (the
LLM criteria judge with its versioned prompt judge_prompt_v1.md), decide (rules first, then the
judge, into one verdict per probe), score (pass rates per category with bootstrap intervals, policy
against reference, regression flag). See docs/safety.md."""
