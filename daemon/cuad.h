/* cuad.h - the default extraction checklist: the 41 clause categories of the
 * CUAD data set (Contract Understanding Atticus Dataset), with short
 * descriptions written for smoldoc's prompts. */
#ifndef CUAD_H
#define CUAD_H

#include <stddef.h>

typedef struct cuad_category {
    const char *name;        /* CUAD category name, e.g. "Governing Law" */
    const char *description; /* what to look for, one sentence */
} cuad_category;

#define CUAD_N_CATEGORIES 41

/* The 41 categories in CUAD's order; a static array of CUAD_N_CATEGORIES. */
const cuad_category *cuad_categories(void);

/* The category named name (case-insensitive), or NULL. */
const cuad_category *cuad_find(const char *name);

#endif
