"""The CLIP-TD vision-language tasks (VQA v2, SNLI-VE, VCR): examples, labels and answers."""
