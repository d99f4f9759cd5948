CREATE SCHEMA IF NOT EXISTS "annealer";
--> statement-breakpoint
CREATE TABLE "annealer"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
