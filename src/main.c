/* main.c -- placeholder until the proxy core lands. */
#include <stdio.h>

int main(void)
{
	puts("pgslab");
	return 0;
}
